"""Policy learners: a method registry of configs + models + losses, trained by one trainer."""

from vfmbench.policies import bc as _bc  # noqa: F401  (registers methods)
from vfmbench.policies import gaussian_bc as _gaussian_bc  # noqa: F401
from vfmbench.policies import bc_rnn as _bc_rnn  # noqa: F401
from vfmbench.policies import diffusion as _diffusion  # noqa: F401
from vfmbench.policies import iql as _iql  # noqa: F401
from vfmbench.policies.base import (
    METHODS,
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
    "METHODS",
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
