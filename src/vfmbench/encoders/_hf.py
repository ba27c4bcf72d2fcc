"""The `transformers` side of the ViT and SAM encoders: the import (extra ``vfm``) and reading
hub folders (``save_pretrained`` layout)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from vfmbench.utils.imports import require

EXTRA = "vfm"


def transformers() -> ModuleType:
    """The `transformers` module, or MissingDependencyError naming the ``vfm`` extra."""
    return require("transformers", extra=EXTRA)


def hub_state_dict(class_name: str, path: Path, submodule: str | None = None) -> dict[str, Any]:
    """Load hub folder `path` with ``transformers.<class_name>.from_pretrained`` and return the
    state dict of the model (or of its `submodule`, e.g. SAM's ``vision_encoder``)."""
    cls = getattr(transformers(), class_name)
    model = cls.from_pretrained(str(path))
    if submodule is not None:
        model = getattr(model, submodule)
    return dict(model.state_dict())
