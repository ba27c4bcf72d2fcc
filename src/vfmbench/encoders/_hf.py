"""The `transformers` side of the ViT and SAM encoders: the import (extra ``vfm``) and reading
hub folders (``save_pretrained`` layout)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from vfmbench.utils.imports import require
from vfmbench.weights import CheckpointError

EXTRA = "vfm"

# Config fields that fix an architecture (head count, sizes, registers, ...). A hub folder whose
# config.json differs from the model's in any of them holds another model, even where the shapes
# of its tensors happen to fit (a head count is in no tensor's shape).
ARCH_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size", "intermediate_size",
    "mlp_ratio", "mlp_dim", "num_register_tokens", "projection_dim", "global_attn_indexes", "window_size",
    "output_channels", "use_swiglu_ffn", "hidden_act", "qkv_bias",
)


def transformers() -> ModuleType:
    """The `transformers` module, or MissingDependencyError naming the ``vfm`` extra."""
    return require("transformers", extra=EXTRA)


def _short(items: list[str]) -> str:
    return ", ".join(items[:6]) + (" ..." if len(items) > 6 else "")


def hub_state_dict(class_name: str, path: Path, expected: Any, submodule: str | None = None,
                   model_types: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load hub folder `path` with ``transformers.<class_name>.from_pretrained`` and return the
    state dict of the model (or of its `submodule`, e.g. SAM's ``vision_encoder``).

    The folder must be of one of `model_types` (its config.json's ``model_type``), its config must
    describe the same architecture as `expected` (the config of the model it is loaded into; see
    `ARCH_FIELDS`), and every weight of the model (or submodule) must come from the folder:
    ``from_pretrained`` would otherwise initialise missing ones at random without failing."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError("the folder has no config.json, so it is not a hub folder (save_pretrained layout)")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_types and model_type not in model_types:
        raise CheckpointError(f"it is a hub folder of a {model_type!r} model, not of {' or '.join(map(repr, model_types))}")
    cls = getattr(transformers(), class_name)
    model, info = cls.from_pretrained(str(path), output_loading_info=True)
    prefix = f"{submodule}." if submodule else ""
    missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith(prefix))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    if missing or mismatched:
        parts = [f"the folder lacks {len(missing)} weights of the model: {_short(missing)}"] if missing else []
        if mismatched:
            parts.append(f"{len(mismatched)} weights have the wrong shape: {_short(mismatched)}")
        raise CheckpointError("; ".join(parts))
    if submodule is not None:
        model = getattr(model, submodule)
    differences = [
        f"{field} {getattr(model.config, field)!r} (here {getattr(expected, field)!r})"
        for field in ARCH_FIELDS
        if hasattr(model.config, field) and hasattr(expected, field)
        and _normal(getattr(model.config, field)) != _normal(getattr(expected, field))
    ]
    if differences:
        raise CheckpointError(f"its config.json describes another architecture: {'; '.join(differences)}")
    return dict(model.state_dict())


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value
