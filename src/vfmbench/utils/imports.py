"""Optional dependencies in one place: `require("mujoco", extra="sim")`."""

from __future__ import annotations

import importlib
from types import ModuleType

from vfmbench.utils.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or fail with the pip command that installs the extra providing it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is needed here but is not installed ({exc}); "
            f"install it with: pip install 'vfmbench[{extra}]'"
        ) from exc
