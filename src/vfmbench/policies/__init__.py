"""Policy learners: a method registry of configs + models + losses, trained by one trainer."""

from vfmbench.policies import bc as _bc  # noqa: F401  (registers methods)
from vfmbench.policies.base import (
    MethodConfig,
    MethodSpec,
    Policy,
    PolicyDims,
    get_method_spec,
    list_methods,
    make_policy,
    method_config,
    register_method,
)

__all__ = [
    "MethodConfig",
    "MethodSpec",
    "Policy",
    "PolicyDims",
    "get_method_spec",
    "list_methods",
    "make_policy",
    "method_config",
    "register_method",
]
