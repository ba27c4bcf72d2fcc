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
    given: bool = False  # a file of the user's own (weights=...), not the installed weight set

    @property
    def name(self) -> str:
        return self.spec.name

    def error(self, problem: str) -> WeightsError:
        if self.given:
            return own_weights_error(self.spec, self.path, problem, self.hint)
        return weights_error(self.spec, self.path, problem, self.hint)


def own_weights_error(spec: WeightsSpec, path: Path, problem: str, hint: str = "") -> WeightsError:
    """An error about a weights file the user gave for `spec` (not the installed set): what is wrong
    with it, and that the installed set is the alternative."""
    lines = [f"the weights file given for {spec.name!r} {problem}", f"  file: {path}",
             f"  check that file, or leave it out to use the installed weight set ({spec.fetch_command})"]
    return WeightsError("\n".join(lines + ([f"  {hint}"] if hint else [])))


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
        raise own_weights_error(spec, path, "does not exist", hint)
    try:
        digest = cached_sha256(path)
    except WeightsError as exc:
        raise own_weights_error(spec, path, f"cannot be read ({exc})", hint) from None
    return WeightsLocation(spec, path, digest, hint, given=True)


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
    except CheckpointError as exc:  # readable, but not what this model reads
        raise location.error(f"could not be loaded ({exc})") from exc
    except Exception as exc:  # corrupt archives raise anything from EOFError to RuntimeError
        if location.path.is_dir():
            raise location.error(f"could not be loaded ({type(exc).__name__}: {exc})") from exc
        raise location.error(f"could not be loaded: the file cannot be read as a checkpoint ({type(exc).__name__}: "
                             f"{exc}); it is damaged or of another kind") from exc
