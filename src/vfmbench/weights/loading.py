"""From ``pretrained`` / ``weights=`` to weights loaded into a module.

`locate_weights` turns a weight set (and an optional user-given file or hub folder) into a
`WeightsLocation`: a path and its sha256. `load_checkpoint_into` reads that location and loads it
into a module through a converter; a `CheckpointError` (or any failure to read the file) becomes
a WeightsError that names the file, its source and the command that fetches it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from vfmbench.utils.errors import WeightsError
from vfmbench.weights.checksums import cached_sha256, resolve_weights
from vfmbench.weights.formats import CheckpointError, StateDict, file_keys, load_exact, read_state_dict
from vfmbench.weights.specs import WeightsSpec, weights_error


@dataclass(frozen=True)
class WeightsLocation:
    """Where a weight set's weights are: the path (file or hub folder) and its sha256. `hint` ends
    every error about them (e.g. how to ask for random weights instead)."""

    spec: WeightsSpec
    path: Path
    sha256: str
    hint: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    def error(self, problem: str) -> WeightsError:
        return weights_error(self.spec, self.path, problem, self.hint)


def locate_weights(spec: WeightsSpec, weights: str | os.PathLike[str] | None = None, *,
                   hint: str = "") -> WeightsLocation:
    """Resolve `spec`'s weights: the file in VFMBENCH_HOME (checked against the spec's sha256) or,
    when `weights` is given, that file or hub folder (any supported format; no checksum enforced).
    `hint` is appended to every error."""
    if weights is None:
        try:
            path, digest = resolve_weights(spec)
        except WeightsError as exc:
            raise WeightsError(f"{exc}\n  {hint}" if hint else str(exc)) from None
        return WeightsLocation(spec, path, digest, hint)
    path = Path(weights).expanduser()
    if not path.exists():
        raise weights_error(spec, path, "not found (weights= points to a missing path)", hint)
    try:
        digest = cached_sha256(path)
    except WeightsError as exc:
        raise weights_error(spec, path, f"are incomplete ({exc})", hint) from None
    return WeightsLocation(spec, path, digest, hint)


def load_checkpoint_into(
    module: torch.nn.Module,
    location: WeightsLocation,
    convert: Callable[[dict[str, Any]], StateDict],
    hub: Callable[[Path], StateDict] | None = None,
) -> None:
    """Load `location` into `module`: a file through `convert` (official layout -> module keys; it
    raises a CheckpointError for a file in another layout), a hub folder through `hub`. The file is
    read without running code from it (`read_state_dict`). Any failure is a WeightsError naming the
    file, source and fetch command; keys that do not fit are named as the file stores them."""
    try:
        if location.path.is_dir():
            if hub is None:
                raise CheckpointError("this model reads checkpoint files, not folders")
            load_exact(module, hub(location.path))
        else:
            checkpoint = read_state_dict(location.path)
            load_exact(module, convert(checkpoint), stored=file_keys(checkpoint))
    except Exception as exc:  # corrupt archives raise anything from EOFError to RuntimeError
        raise location.error(f"could not be loaded ({type(exc).__name__}: {exc})") from exc
