"""Embedding cache: frozen-encoder embeddings of a dataset are computed once and reused.

The key is a hash of everything that determines the numbers: the encoder's identity (name,
weights checksum or random seed, preprocessing, options such as pooling), the dataset's
content fingerprint, which array (pixels or goal_pixels), the output kind (pooled or
spatial) and the compute precision. Change any of them and the cache misses. Entries are
written to a temporary folder and renamed into place, so a crash never leaves a partial one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vfmbench.data.episodes import EpisodeDataset
from vfmbench.encoders.base import Encoder
from vfmbench.utils.errors import ConfigError
from vfmbench.utils.io import read_json, write_json_atomic
from vfmbench.utils.paths import cache_dir

CACHE_VERSION = 1
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    keys: list[str] = field(default_factory=list)


class EmbeddingCache:
    """Embeddings on disk under ``root/<key>/`` (zarr array + meta.json)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"
        self.stats = CacheStats()

    def key(self, encoder: Encoder, dataset: EpisodeDataset, array: str = "pixels", spatial: bool = False,
            precision: str = "float32") -> str:
        identity = self.identity(encoder, dataset, array, spatial, precision)
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def identity(self, encoder: Encoder, dataset: EpisodeDataset, array: str, spatial: bool, precision: str) -> dict[str, Any]:
        return {
            "cache_version": CACHE_VERSION,
            "encoder": encoder.cache_identity(),
            "dataset": dataset.fingerprint(),
            "array": array,
            "spatial": spatial,
            "precision": precision,
        }

    def get_or_compute(
        self,
        encoder: Encoder,
        dataset: EpisodeDataset,
        array: str = "pixels",
        *,
        spatial: bool = False,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        precision: str = "float32",
        progress: bool = True,
    ) -> np.ndarray:
        """Embeddings of `dataset[array]`: ``[N, D]`` (or ``[N, C, h, w]`` with spatial=True), float32.

        Computed in batches of `batch_size` on `device` (the GPU when present) and streamed to
        disk, so large spatial features never have to fit in memory at once; the return value
        is a NumPy array for pooled embeddings and a read-only zarr array for spatial ones.
        """
        if encoder.trainable:
            raise ConfigError(f"encoder {encoder.name!r} trains with the policy; its embeddings cannot be cached")
        if precision not in _DTYPES:
            raise ConfigError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
        key = self.key(encoder, dataset, array, spatial, precision)
        entry = self.root / key
        if (entry / "meta.json").exists():
            self.stats.hits += 1
            self.stats.keys.append(key)
            return self._open(entry, spatial)
        self.stats.misses += 1
        self.stats.keys.append(key)
        self._compute(entry, encoder, dataset, array, spatial, batch_size, device, precision, progress)
        return self._open(entry, spatial)

    def _open(self, entry: Path, spatial: bool):
        import zarr

        arr = zarr.open_array(str(entry / "embeddings.zarr"), mode="r")
        return arr if spatial else np.asarray(arr[:])

    def _compute(self, entry: Path, encoder: Encoder, dataset: EpisodeDataset, array: str, spatial: bool,
                 batch_size: int, device: str | torch.device | None, precision: str, progress: bool) -> None:
        import zarr

        device = torch.device(device) if device is not None else default_device()
        dtype = _DTYPES[precision]
        total = dataset.n_frames if array in ("pixels", "state") else dataset.num_episodes
        tmp = self.root / f".tmp-{entry.name}-{time.time_ns()}"
        tmp.mkdir(parents=True)
        try:
            encoder = encoder.to(device).eval()
            out = None
            bar = tqdm(total=total, desc=f"embed {encoder.name} {array}", unit="img", disable=not progress)
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                for start, block in dataset.iter_chunks(array, batch_size):
                    x = torch.from_numpy(block).to(device, non_blocking=True)
                    y = encoder.spatial_features(x) if spatial else encoder(x)
                    y = y.float().cpu().numpy()
                    if out is None:
                        out = zarr.create_array(
                            str(tmp / "embeddings.zarr"), shape=(total, *y.shape[1:]), dtype="float32",
                            chunks=(max(1, min(total, (8 << 20) // max(1, y[0].nbytes))), *y.shape[1:]),
                        )
                    out[start : start + len(y)] = y
                    bar.update(len(y))
            bar.close()
            write_json_atomic(tmp / "meta.json", {
                **self.identity(encoder, dataset, array, spatial, precision),
                "dataset_path": str(dataset.root),
                "shape": list(out.shape) if out is not None else [0],
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            })
            if entry.exists():  # a concurrent writer won; keep theirs
                shutil.rmtree(tmp)
            else:
                tmp.rename(entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def entries(self) -> list[dict[str, Any]]:
        """Metadata of every cached entry."""
        if not self.root.exists():
            return []
        return [dict(read_json(p / "meta.json"), key=p.name) for p in sorted(self.root.iterdir()) if (p / "meta.json").exists()]
