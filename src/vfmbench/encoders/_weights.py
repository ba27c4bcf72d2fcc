"""Pretrained weights: where each file comes from, its checksum and licence, and where it lives.

Files live under ``$VFMBENCH_HOME/weights/<encoder>/<filename>``. Nothing is downloaded
implicitly: a missing file is an error naming the file, its source and the command that
fetches it; random weights are only ever used when asked for (``pretrained=False``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from vfmbench.utils.errors import WeightsError
from vfmbench.utils.paths import weights_dir


@dataclass(frozen=True)
class WeightsSpec:
    """One official weight set.

    source: URL or hub id the file comes from; filename: its name on disk; sha256: checksum of
    that file (None where the publisher gives none and the file is verified by loading);
    format: the checkpoint layout the loader expects (e.g. "torchvision", "segment_anything",
    "hf_dir"); license: the weights' licence.
    """

    source: str
    filename: str
    sha256: str | None
    license: str
    format: str
    size_mb: float | None = None


def weights_path(encoder: str, spec: WeightsSpec) -> Path:
    """Where `encoder`'s weights file is expected."""
    return weights_dir() / encoder / spec.filename


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_weights(encoder: str, spec: WeightsSpec) -> Path:
    """The local weights file for `encoder`, or a WeightsError that says how to get it."""
    path = weights_path(encoder, spec)
    if not path.exists():
        raise WeightsError(
            f"pretrained weights for {encoder!r} not found: expected {path}\n"
            f"  source: {spec.source}\n"
            f"  fetch them with: vfmbench weights download {encoder}\n"
            f"  (or place the file there by hand; set VFMBENCH_HOME to use another folder)\n"
            f"  for random weights ask explicitly: create_encoder({encoder!r}, pretrained=False)"
        )
    return path
