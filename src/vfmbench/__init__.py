"""vfmbench: which vision backbone should a visuomotor policy use?

Public API (imported lazily so that `import vfmbench` stays cheap)::

    create_encoder(name, pretrained=None) -> Encoder   # uint8 [B,H,W,3] -> [B,D]
    list_encoders() -> list[str]
    make_task(name, **config) -> Task
    list_tasks() -> list[str]
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_encoder": "vfmbench.encoders",
    "list_encoders": "vfmbench.encoders",
    "make_task": "vfmbench.tasks",
    "list_tasks": "vfmbench.tasks",
    "make_policy": "vfmbench.policies",
    "list_methods": "vfmbench.policies",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vfmbench' has no attribute {name!r}")
