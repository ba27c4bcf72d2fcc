"""Reading checkpoint files into state dicts, and the helpers that map them onto a module.

`read_state_dict` opens safetensors files, ``torch.save`` archives (loaded with
``weights_only=True``; ``argparse.Namespace`` entries, which some training scripts store next to
the weights, are allowed) and TorchScript archives (OpenAI's CLIP ``.pt``). Checkpoints that
pickle anything else are refused unless ``VFMBENCH_TRUST_CHECKPOINTS=1`` is set.

`unwrap`, `strip_prefix` and `rename` take an official layout apart (nesting, key prefixes, key
names); `load_exact` loads the result strictly, listing what does not fit as a `CheckpointError`.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

StateDict = dict[str, torch.Tensor]
TRUST_ENV = "VFMBENCH_TRUST_CHECKPOINTS"


class CheckpointError(Exception):
    """A checkpoint's content does not fit the architecture or format (missing keys, wrong shapes)."""


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(name.endswith("constants.pkl") for name in z.namelist())


def read_state_dict(path: Path) -> dict[str, Any]:
    """The top-level mapping stored in checkpoint file `path` (tensors, maybe nested dicts)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    if _is_torchscript(path):  # OpenAI's CLIP releases; torch.jit.load is deprecated but still reads them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    if os.environ.get(TRUST_ENV) == "1":
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"it pickles objects other than tensors ({str(exc).splitlines()[0]}); if you trust the file, "
            f"set {TRUST_ENV}=1 to load it anyway"
        ) from None


def unwrap(checkpoint: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The state dict nested under the first of `keys` present (e.g. ``"model"``), else the mapping itself."""
    for key in keys:
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return dict(checkpoint[key])
    return dict(checkpoint)


def strip_prefix(state: Mapping[str, Any], prefix: str) -> StateDict:
    """Entries whose key starts with `prefix`, with the prefix removed (others are dropped)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def rename(state: Mapping[str, torch.Tensor], rules: list[tuple[str, str]]) -> StateDict:
    """Apply regex `rules` (pattern, replacement) to every key; the first matching rule wins."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for key, value in state.items():
        for pattern, repl in compiled:
            if pattern.match(key):
                key = pattern.sub(repl, key, count=1)
                break
        out[key] = value
    return out


def load_exact(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)`` with a CheckpointError listing missing, unexpected and misshaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                parts.append(f"{label} ({len(items)}): {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}")
        raise CheckpointError("; ".join(parts))
    module.load_state_dict(dict(state), strict=True)
