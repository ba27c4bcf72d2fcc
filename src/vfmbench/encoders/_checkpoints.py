"""Reading official checkpoints: file formats, nesting, key prefixes, and where weights come from.

`read_state_dict` opens safetensors files, ``torch.save`` archives (loaded with
``weights_only=True``; ``argparse.Namespace`` entries, which some training scripts store next to
the weights, are allowed) and TorchScript archives (OpenAI's CLIP ``.pt``). Checkpoints that
pickle anything else are refused unless ``VFMBENCH_TRUST_CHECKPOINTS=1`` is set.

`locate_weights` turns ``pretrained`` / ``weights=`` into a path and a sha256 for the encoder's
``weights_id``; `CheckpointError` from a converter becomes a WeightsError that names the file,
its source and the command that fetches it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from vfmbench.encoders._weights import WeightsSpec, cached_sha256, resolve_weights, weights_error
from vfmbench.utils.errors import WeightsError

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


@dataclass(frozen=True)
class WeightsLocation:
    """Where an encoder's pretrained weights are: the path (file or hub folder) and its sha256."""

    encoder: str
    spec: WeightsSpec
    path: Path
    sha256: str

    def error(self, problem: str) -> WeightsError:
        return weights_error(self.encoder, self.spec, self.path, problem)


def locate_weights(encoder: str, spec: WeightsSpec, weights: str | os.PathLike[str] | None) -> WeightsLocation:
    """Resolve `encoder`'s weights: the file in VFMBENCH_HOME (checked against the spec's sha256) or,
    when `weights` is given, that file or hub folder (any supported format; no checksum enforced)."""
    if weights is None:
        path, digest = resolve_weights(encoder, spec)
        return WeightsLocation(encoder, spec, path, digest)
    path = Path(weights).expanduser()
    if not path.exists():
        raise weights_error(encoder, spec, path, "not found (weights= points to a missing path)")
    try:
        digest = cached_sha256(path)
    except WeightsError as exc:
        raise weights_error(encoder, spec, path, f"are incomplete ({exc})") from None
    return WeightsLocation(encoder, spec, path, digest)


def load_checkpoint_into(
    module: torch.nn.Module,
    location: WeightsLocation,
    convert: Callable[[dict[str, Any]], StateDict],
    hub: Callable[[Path], StateDict] | None = None,
) -> None:
    """Load `location` into `module`: a file through `convert` (official layout -> module keys), a
    hub folder through `hub`. Any failure is a WeightsError naming the file, source and fetch command."""
    try:
        if location.path.is_dir():
            if hub is None:
                raise CheckpointError("this encoder reads checkpoint files, not folders")
            state = hub(location.path)
        else:
            state = convert(read_state_dict(location.path))
        load_exact(module, state)
    except Exception as exc:  # corrupt archives raise anything from EOFError to RuntimeError
        raise location.error(f"could not be loaded ({type(exc).__name__}: {exc})") from exc
