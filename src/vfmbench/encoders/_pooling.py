"""Poolings of spatial features ``[B, C, h, w]`` into embeddings ``[B, D]``, by name.

``mean`` and ``max`` pool over all positions (D = C); ``gridN`` (e.g. ``grid6``) average-pools
to an N x N grid with ``adaptive_avg_pool2d`` and flattens channel-major (D = C * N * N), which
is how SAM's 256 x 64 x 64 neck output becomes the 9216-dimensional embedding of paper 000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from vfmbench.utils.errors import ConfigError


@dataclass(frozen=True)
class SpatialPooling:
    """A named pooling: ``fn`` maps ``[B, C, h, w]`` to ``[B, dim(C)]``."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    dim: Callable[[int], int]

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return self.fn(features)


def _grid(n: int) -> SpatialPooling:
    return SpatialPooling(f"grid{n}", lambda f: F.adaptive_avg_pool2d(f, n).flatten(1), lambda c: c * n * n)


_FIXED: dict[str, SpatialPooling] = {
    "mean": SpatialPooling("mean", lambda f: f.mean(dim=(2, 3)), lambda c: c),
    "max": SpatialPooling("max", lambda f: f.amax(dim=(2, 3)), lambda c: c),
}
_GRID = re.compile(r"grid([1-9][0-9]?)")


def spatial_pooling(name: str) -> SpatialPooling:
    """The pooling called `name`: ``mean``, ``max`` or ``gridN`` (N in 1..99)."""
    if name in _FIXED:
        return _FIXED[name]
    match = _GRID.fullmatch(name)
    if match:
        return _grid(int(match.group(1)))
    raise ConfigError(f"unknown pooling {name!r}; valid: {', '.join(sorted(_FIXED))}, gridN (e.g. grid6)")
