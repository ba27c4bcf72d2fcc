"""Episode storage: chunked zarr arrays plus ``manifest.json``.

Layout of a dataset folder::

    manifest.json        what the data is (task, camera, resolution, seeds, versions) and how
                         much of it is committed; rewritten atomically after every episode
    episodes.zarr/       per-frame arrays  pixels [N,H,W,3] uint8, state [N,S], proprio [N,P],
                         actions [N,A] float32, masks [N,H,W] bool (task_config.masks);
                         per-episode arrays goal_pixels [E,H,W,3], goal_state [E,S]
                         (goal-conditioned tasks), goal_masks [E,H,W] bool

The manifest is the commit record: rows beyond its ``n_frames`` (an episode interrupted
mid-write) are ignored by readers and truncated by the next writer, so an interrupted collect
leaves a readable dataset of its finished episodes.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from vfmbench.utils.errors import DatasetError
from vfmbench.utils.io import read_json, write_json_atomic

if TYPE_CHECKING:
    from vfmbench.tasks.base import TaskSpaces

FORMAT = "vfmbench-episodes"
VERSION = 1
MANIFEST = "manifest.json"
STORE = "episodes.zarr"
FRAME_ARRAYS = ("pixels", "state", "proprio", "actions", "masks")
EPISODE_ARRAYS = ("goal_pixels", "goal_state", "goal_masks")


def _zarr():
    import zarr

    return zarr


class EpisodeWriter:
    """Appends whole episodes to a dataset folder, committing each in the manifest."""

    def __init__(self, root: str | Path, header: dict[str, Any]):
        """Open `root` for appending; `header` (task description, config) must match an existing one."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        zarr = _zarr()
        manifest_path = self.root / MANIFEST
        if manifest_path.exists():
            self.manifest = _read_manifest(self.root)
            if self.manifest["header"] != json.loads(json.dumps(header)):
                diff = _first_difference(self.manifest["header"], json.loads(json.dumps(header)))
                raise DatasetError(
                    f"{self.root} already holds a dataset collected with different settings ({diff}); "
                    f"use another --out folder or delete this one"
                )
            self.group = zarr.open_group(str(self.root / STORE), mode="a")
            for name in list(self.group.array_keys()):  # drop a half-written episode
                arr = self.group[name]
                rows = self.manifest["n_frames"] if name in FRAME_ARRAYS else len(self.manifest["episodes"])
                if arr.shape[0] > rows:
                    arr.resize((rows, *arr.shape[1:]))
        else:
            self.manifest = {
                "format": FORMAT,
                "version": VERSION,
                "header": json.loads(json.dumps(header)),
                "episodes": [],
                "n_frames": 0,
                "complete": False,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            self.group = zarr.open_group(str(self.root / STORE), mode="w")
            write_json_atomic(manifest_path, self.manifest)

    @property
    def num_episodes(self) -> int:
        return len(self.manifest["episodes"])

    def append(self, frames: dict[str, np.ndarray], per_episode: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Write one episode: `frames` arrays ``[T, ...]``, `per_episode` arrays ``[...]``, then commit."""
        lengths = {k: len(v) for k, v in frames.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"frame arrays of one episode differ in length: {lengths}")
        t = next(iter(lengths.values()))
        n, e = self.manifest["n_frames"], self.num_episodes
        for name, value in frames.items():
            self._write(name, n, np.asarray(value))
        for name, value in per_episode.items():
            self._write(name, e, np.asarray(value)[None])
        self.manifest["episodes"].append({**meta, "start": n, "length": t})
        self.manifest["n_frames"] = n + t
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def _write(self, name: str, start: int, value: np.ndarray) -> None:
        if name not in self.group:
            chunk_rows = max(1, min(256, (4 << 20) // max(1, value[0].nbytes)))  # about 4 MB chunks
            self.group.create_array(
                name, shape=(0, *value.shape[1:]), chunks=(chunk_rows, *value.shape[1:]), dtype=value.dtype
            )
        arr = self.group[name]
        if arr.shape[0] != start:
            arr.resize((start, *arr.shape[1:]))
        arr.resize((start + len(value), *arr.shape[1:]))
        arr[start:] = value

    def finalize(self, extra: dict[str, Any] | None = None) -> "EpisodeDataset":
        """Mark the dataset complete and record its content fingerprint."""
        self.manifest["complete"] = True
        self.manifest.update(extra or {})
        write_json_atomic(self.root / MANIFEST, self.manifest)
        ds = EpisodeDataset(self.root)
        self.manifest["fingerprint"] = ds.compute_fingerprint()
        write_json_atomic(self.root / MANIFEST, self.manifest)
        return EpisodeDataset(self.root)


class EpisodeDataset:
    """Read access to a dataset folder written by `EpisodeWriter`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = _read_manifest(self.root)
        zarr = _zarr()
        try:
            self.group = zarr.open_group(str(self.root / STORE), mode="r")
        except Exception as exc:  # zarr raises several types for a missing/corrupt store
            raise DatasetError(f"{self.root / STORE} cannot be opened ({exc}); the dataset is corrupt: collect it again") from exc
        for name in self.group.array_keys():
            rows = self.n_frames if name in FRAME_ARRAYS else self.num_episodes
            if self.group[name].shape[0] < rows:
                raise DatasetError(
                    f"{self.root / STORE}/{name} has {self.group[name].shape[0]} rows but the manifest "
                    f"commits {rows}; the dataset is corrupt: collect it again"
                )
        if self.num_episodes and "actions" not in self.group:
            raise DatasetError(f"{self.root / STORE} has no 'actions' array; the dataset is corrupt")

    # -- metadata -------------------------------------------------------------------------
    @property
    def header(self) -> dict[str, Any]:
        return self.manifest["header"]

    @property
    def task(self) -> dict[str, Any]:
        """The task description the data was collected with (`Task.describe`)."""
        return self.header["task"]

    @property
    def spaces(self) -> "TaskSpaces":
        """Sizes of the task's observations and actions, as recorded in the manifest."""
        from vfmbench.tasks.base import TaskSpaces

        return TaskSpaces.from_description(self.task, source=str(self.root / MANIFEST))

    @property
    def n_frames(self) -> int:
        return int(self.manifest["n_frames"])

    @property
    def num_episodes(self) -> int:
        return len(self.manifest["episodes"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def episode_starts(self) -> np.ndarray:
        return np.array([e["start"] for e in self.manifest["episodes"]], dtype=np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.array([e["length"] for e in self.manifest["episodes"]], dtype=np.int64)

    def episode_index(self) -> np.ndarray:
        """For every frame, the index of its episode: ``[N]`` int64."""
        return np.repeat(np.arange(self.num_episodes), self.episode_lengths)

    def has(self, name: str) -> bool:
        return name in self.group

    # -- data -----------------------------------------------------------------------------
    def load(self, name: str) -> np.ndarray:
        """The committed rows of array `name` as a NumPy array."""
        if name not in self.group:
            raise DatasetError(f"{self.root} has no array {name!r}; it has: {', '.join(sorted(self.group.array_keys()))}")
        rows = self.n_frames if name in FRAME_ARRAYS else self.num_episodes
        return np.asarray(self.group[name][:rows])

    def iter_chunks(self, name: str, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, block)`` of array `name` in blocks of `rows` rows (bounded memory)."""
        total = self.n_frames if name in FRAME_ARRAYS else self.num_episodes
        arr = self.group[name]
        for start in range(0, total, rows):
            yield start, np.asarray(arr[start : min(total, start + rows)])

    def fingerprint(self) -> str:
        """Content hash identifying this data (stored at completion; computed otherwise)."""
        if self.complete and "fingerprint" in self.manifest:
            return self.manifest["fingerprint"]
        return self.compute_fingerprint()

    def compute_fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.header, sort_keys=True).encode())
        h.update(json.dumps(self.manifest["episodes"], sort_keys=True).encode())
        for name in sorted(self.group.array_keys()):
            h.update(name.encode())
            for _, block in self.iter_chunks(name, 1024):
                h.update(np.ascontiguousarray(block).tobytes())
        return h.hexdigest()[:32]

    def __repr__(self) -> str:
        return f"EpisodeDataset({str(self.root)!r}, task={self.task.get('task')}, episodes={self.num_episodes}, frames={self.n_frames})"


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; create it with: vfmbench collect --task T --out {root}")
    if not path.exists():
        raise DatasetError(
            f"{root} is not a vfmbench dataset: {MANIFEST} is missing (was the collect interrupted "
            f"before its first episode?); collect it again with: vfmbench collect --out {root}"
        )
    try:
        manifest = read_json(path)
    except (json.JSONDecodeError, OSError) as exc:
        raise DatasetError(f"{path} is unreadable ({exc}); the dataset is corrupt: collect it again") from exc
    for key in ("format", "version", "header", "episodes", "n_frames"):
        if key not in manifest:
            raise DatasetError(f"{path} lacks the key {key!r}; it was not written by vfmbench or is corrupt")
    if manifest["format"] != FORMAT:
        raise DatasetError(f"{path}: format {manifest['format']!r} is not {FORMAT!r}")
    if manifest["version"] > VERSION:
        raise DatasetError(f"{path}: dataset version {manifest['version']} is newer than this vfmbench reads ({VERSION}); upgrade vfmbench")
    return manifest


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path or 'value'}: existing {a!r} vs requested {b!r}"
