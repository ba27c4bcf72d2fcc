"""Where vfmbench keeps weights, datasets and caches: `VFMBENCH_HOME` (default ~/.cache/vfmbench)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The root of everything vfmbench stores outside a run directory."""
    return Path(os.environ.get("VFMBENCH_HOME", Path.home() / ".cache" / "vfmbench")).expanduser()


def cache_dir() -> Path:
    return home() / "cache"


def weights_dir() -> Path:
    return home() / "weights"


def datasets_dir() -> Path:
    return home() / "datasets"
