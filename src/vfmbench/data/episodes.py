"""Episode storage: chunked zarr arrays plus ``manifest.json``.

Layout of a dataset folder::

    manifest.json        what the data is (task, camera, resolution, seeds, versions), how much
                         of it is committed and checksums of what was written; rewritten
                         atomically after every episode
    episodes.zarr/       per-frame arrays  pixels [N,H,W,3] uint8, state [N,S], proprio [N,P],
                         actions [N,A] float32, masks [N,H,W] bool (task_config.masks);
                         per-episode arrays goal_pixels [E,H,W,3], goal_state [E,S]
                         (goal-conditioned tasks), goal_masks [E,H,W] bool

The manifest is the commit record: rows beyond its ``n_frames`` (an episode interrupted
mid-write) are ignored by readers and truncated by the next writer, so an interrupted collect
leaves a readable dataset of its finished episodes.

Integrity (format version 2). The manifest records, for every array, its dtype, row shape and
chunking, the size and SHA-256 of every chunk file that is full (a full chunk is never
rewritten), and for every episode the SHA-256 of each array's rows of that episode. Opening a
dataset checks that every chunk file holding committed rows exists (and, for full chunks, has
its recorded size); reading checks every full chunk's bytes against its checksum as zarr reads
them, and the rows of the last, partly filled chunk against the episodes' checksums, before
any row is returned. The fingerprint that keys the embedding cache is a hash of the header and
the episode list with these checksums, so it changes whenever the content does, and costs no
read. Version-1 datasets (no checksums) are read unverified, with a warning, and cannot be
extended.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from vfmbench.utils.config import first_difference
from vfmbench.utils.errors import DatasetError
from vfmbench.utils.io import remove_stale_temporaries, write_json_atomic

if TYPE_CHECKING:
    from vfmbench.tasks.base import TaskSpaces

FORMAT = "vfmbench-episodes"
VERSION = 2
MANIFEST = "manifest.json"
STORE = "episodes.zarr"
FRAME_ARRAYS = ("pixels", "state", "proprio", "actions", "masks")
EPISODE_ARRAYS = ("goal_pixels", "goal_state", "goal_masks")
CHUNK_BYTES = 4 << 20  # about 4 MB chunks
DIGEST_CHARS = 32  # 128 bits of SHA-256, hex

log = logging.getLogger(__name__)
_WARNED: set[str] = set()

DAMAGED = ("the dataset is damaged; restore the file from a copy, or collect the dataset again into a new "
           "folder (manifest.json lists the seeds of its episodes)")


def _zarr():
    import zarr

    return zarr


def content_digest(data: np.ndarray) -> str:
    """SHA-256 (hex, truncated to `DIGEST_CHARS`) of an array's bytes in C order."""
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return hashlib.sha256(flat).hexdigest()[:DIGEST_CHARS]


def bytes_digest(data: bytes | memoryview | np.ndarray) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


# -- chunk files checked as zarr reads them -------------------------------------------------------


_STORE_CLASS: Any = None


def verifying_store(root: Path, checks: dict[str, tuple[int | None, str | None, Any]], advice: str):
    """A read-only zarr `LocalStore` on `root` that checks chunk files as they are read.

    `checks` maps a store key (``"pixels/c/3/0/0/0"``) to ``(size, sha256, label)``: the file must
    exist, and where size and digest are given, its bytes must match them; otherwise reading
    raises `DatasetError` naming `label` (a string, or a function returning one) and saying
    `advice`. Other keys pass through.
    """
    global _STORE_CLASS
    if _STORE_CLASS is None:
        from zarr.storage import LocalStore

        class VerifyingStore(LocalStore):
            def __init__(self, root: Path | str, *, read_only: bool = True, checks=None, advice: str = "") -> None:
                super().__init__(root, read_only=read_only)
                self.checks = {} if checks is None else checks
                self.advice = advice

            def with_read_only(self, read_only: bool = False):
                return type(self)(self.root, read_only=read_only, checks=self.checks, advice=self.advice)

            async def get(self, key: str, prototype=None, byte_range=None):
                buf = await super().get(key, prototype, byte_range)
                check = self.checks.get(key)
                if check is not None:
                    _check_chunk(check, buf, byte_range, self.advice)
                return buf

        _STORE_CLASS = VerifyingStore
    return _STORE_CLASS(root, read_only=True, checks=checks, advice=advice)


def _check_chunk(check: tuple[int | None, str | None, Any], buf: Any, byte_range: Any, advice: str) -> None:
    size, digest, label = check
    label = label() if callable(label) else label
    if buf is None:
        raise DatasetError(f"{label} is missing; {advice}")
    if byte_range is None and size is not None and digest is not None:
        data = buf.as_numpy_array()
        if len(data) != size:
            raise DatasetError(f"{label} has a size of {len(data)} bytes, not the {size} recorded when it was "
                               f"written; {advice}")
        if bytes_digest(data) != digest:
            raise DatasetError(f"{label} does not match the checksum recorded when it was written; {advice}")


def chunk_key(arr: Any, index: int) -> str:
    """The store key, relative to the array, of chunk `index` along the first axis."""
    return arr.metadata.encode_chunk_key((index,) + (0,) * (arr.ndim - 1))


# -- writing ----------------------------------------------------------------------------------------


class EpisodeWriter:
    """Appends whole episodes to a dataset folder, committing each in the manifest.

    Nothing is created on disk until the first episode is appended (or `finalize` is called),
    so settings that fail before then leave no folder behind.
    """

    def __init__(self, root: str | Path, header: dict[str, Any], chunk_rows: int | None = None):
        """Open `root` for appending; `header` (task description, config) must match an existing one.

        chunk_rows: rows per chunk of new arrays (default: about 4 MB a chunk, at most 256 rows).
        """
        self.root = Path(root)
        self.header = json.loads(json.dumps(header))
        self.chunk_rows = chunk_rows
        self.group = None
        self._prepared = False
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.root} is a file, not a dataset folder; choose another --out")
        if (self.root / MANIFEST).exists():
            self.manifest = _read_manifest(self.root)
            if self.manifest["header"] != self.header:
                diff = first_difference(self.manifest["header"], self.header)
                raise DatasetError(
                    f"{self.root} already holds a dataset collected with different settings ({diff}); "
                    f"use another --out folder or delete this one"
                )
        else:
            self.manifest = {
                "format": FORMAT,
                "version": VERSION,
                "header": self.header,
                "arrays": {},
                "episodes": [],
                "n_frames": 0,
                "complete": False,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }

    @property
    def num_episodes(self) -> int:
        return len(self.manifest["episodes"])

    def _prepare(self) -> None:
        """Create the dataset on disk, or open an existing one and drop a half-written episode."""
        if self._prepared:
            return
        zarr = _zarr()
        self._refuse_old_format()
        if (self.root / MANIFEST).exists():
            # the committed data must be whole before rows are added to its last chunks: rewriting a
            # chunk whose file is lost or damaged would make the damage part of a full chunk
            EpisodeDataset(self.root).verify_last_chunks()
            try:
                self.group = zarr.open_group(str(self.root / STORE), mode="r+")
            except Exception as exc:  # zarr raises several types for a missing/corrupt store
                raise DatasetError(f"{self.root / STORE} cannot be opened ({exc}); {DAMAGED}") from exc
            remove_stale_temporaries(self.root)  # manifest writes that a killed process left
            records = self.manifest["arrays"]
            for name in list(self.group.array_keys()):  # drop a half-written episode
                arr = self.group[name]
                rows = self._rows(name) if name in records else 0
                if arr.shape[0] > rows:
                    arr.resize((rows, *arr.shape[1:]))
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self.group = zarr.open_group(str(self.root / STORE), mode="w")
            write_json_atomic(self.root / MANIFEST, self.manifest)
        self._prepared = True

    def _refuse_old_format(self) -> None:
        if self.manifest["version"] < VERSION:
            raise DatasetError(
                f"{self.root} was collected by an older vfmbench (dataset format {self.manifest['version']}, "
                f"without checksums); it can still be read, but not extended: collect into a new folder"
            )

    def _rows(self, name: str) -> int:
        per = self.manifest["arrays"][name]["per"]
        return self.manifest["n_frames"] if per == "frame" else self.num_episodes

    def append(self, frames: dict[str, np.ndarray], per_episode: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Write one episode: `frames` arrays ``[T, ...]``, `per_episode` arrays ``[...]``, then commit.

        Every episode must give the same arrays, with the same shapes, as the first one.
        """
        self._refuse_old_format()
        frames = {k: np.asarray(v) for k, v in frames.items()}
        per_episode = {k: np.asarray(v) for k, v in per_episode.items()}
        lengths = {k: len(v) for k, v in frames.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"frame arrays of one episode differ in length: {lengths or 'no frame arrays'}")
        t = next(iter(lengths.values()))
        if t < 1:
            raise ValueError("an episode needs at least one frame")
        if set(frames) & set(per_episode):
            raise ValueError(f"arrays given both per frame and per episode: {sorted(set(frames) & set(per_episode))}")
        reserved = {"start", "length", "sha256"} & set(meta)
        if reserved:
            raise ValueError(f"episode metadata may not set {sorted(reserved)}; the writer records them")
        records = self.manifest["arrays"]
        given = {**{k: ("frame", v.shape[1:]) for k, v in frames.items()},
                 **{k: ("episode", v.shape) for k, v in per_episode.items()}}
        if records:
            expected = {k: (r["per"], tuple(r["shape"])) for k, r in records.items()}
            if given != expected:
                raise ValueError(f"episode {self.num_episodes} gives arrays {_describe(given)}; the dataset holds "
                                 f"{_describe(expected)}")
        self._prepare()
        if self.manifest.get("complete") or "fingerprint" in self.manifest:
            # uncommit first: a crash while extending must not leave 'complete' and an old fingerprint
            self.manifest["complete"] = False
            self.manifest.pop("fingerprint", None)
            write_json_atomic(self.root / MANIFEST, self.manifest)
        n, e = self.manifest["n_frames"], self.num_episodes
        committed = json.loads(json.dumps(records))
        try:
            digests = {}
            for name, value in frames.items():
                digests[name] = content_digest(self._write(name, "frame", n, value))
            for name, value in per_episode.items():
                digests[name] = content_digest(self._write(name, "episode", e, value[None]))
            for name in frames:
                self._record_full_chunks(name, n + t)
            for name in per_episode:
                self._record_full_chunks(name, e + 1)
        except BaseException:  # back to the committed state: the next append truncates what was written
            self.manifest["arrays"] = committed
            self._prepared = False
            raise
        self.manifest["episodes"].append({**meta, "start": n, "length": t, "sha256": digests})
        self.manifest["n_frames"] = n + t
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def _write(self, name: str, per: str, start: int, value: np.ndarray) -> np.ndarray:
        """Write rows of `name` from `start`; returns them as stored (in the array's dtype)."""
        zarr = _zarr()
        records = self.manifest["arrays"]
        if name not in records:
            row_bytes = max(1, value[0].nbytes)
            rows = self.chunk_rows or max(1, min(256, CHUNK_BYTES // row_bytes))
            if name in self.group:  # left by an interrupted first episode
                del self.group[name]
            self.group.create_array(name, shape=(0, *value.shape[1:]), chunks=(rows, *value.shape[1:]),
                                    dtype=value.dtype)
            records[name] = {"per": per, "dtype": value.dtype.str, "shape": list(value.shape[1:]),
                             "chunk_rows": rows, "chunks": []}
        value = np.ascontiguousarray(value, dtype=np.dtype(records[name]["dtype"]))
        with zarr.config.set({"array.write_empty_chunks": True}):  # every chunk gets a file to check
            arr = self.group[name]  # (an array takes the setting when it is opened)
        if arr.shape[0] != start:
            arr.resize((start, *arr.shape[1:]))
        arr.resize((start + len(value), *arr.shape[1:]))
        arr[start:] = value
        return value

    def _record_full_chunks(self, name: str, rows: int) -> None:
        """Record size and checksum of the chunks of `name` that the first `rows` rows fill."""
        rec = self.manifest["arrays"][name]
        arr = self.group[name]
        if arr.dtype.itemsize * math.prod(arr.shape[1:]) == 0:
            return
        for i in range(len(rec["chunks"]), rows // rec["chunk_rows"]):
            data = (self.root / STORE / name / chunk_key(arr, i)).read_bytes()
            rec["chunks"].append([len(data), bytes_digest(data)])

    def finalize(self, extra: dict[str, Any] | None = None) -> "EpisodeDataset":
        """Read every committed row back against its checksum, then mark the dataset complete
        and record its fingerprint."""
        self._prepare()
        ds = EpisodeDataset(self.root)
        ds.verify()
        self.manifest["complete"] = True
        self.manifest.update(extra or {})
        self.manifest["fingerprint"] = ds.compute_fingerprint()
        write_json_atomic(self.root / MANIFEST, self.manifest)
        return EpisodeDataset(self.root)


# -- reading ----------------------------------------------------------------------------------------


class EpisodeDataset:
    """Read access to a dataset folder written by `EpisodeWriter`; reads are verified (format 2)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = _read_manifest(self.root)
        self.version = int(self.manifest["version"])
        self._checks: dict[str, tuple[int | None, str | None, Any]] = {}
        self._arrays: dict[str, Any] = {}
        self._fingerprint: str | None = None
        self._starts = np.array([e["start"] for e in self.manifest["episodes"]], dtype=np.int64)
        zarr = _zarr()
        try:
            store = verifying_store(self.root / STORE, self._checks, DAMAGED)
            if not (self.root / STORE).is_dir():
                raise FileNotFoundError(f"no folder {self.root / STORE}")
            self.group = zarr.open_group(store=store, mode="r")
        except Exception as exc:  # zarr raises several types for a missing/corrupt store
            raise DatasetError(f"{self.root / STORE} cannot be opened ({exc}); the dataset is corrupt: collect it "
                               f"again") from exc
        if self.version >= 2:
            self._check_v2()
        else:
            self._check_v1()

    def _check_v1(self) -> None:
        for name in self.group.array_keys():
            self._check_rows(name, self.group[name])
        if self.num_episodes and "actions" not in self.group:
            raise DatasetError(f"{self.root / STORE} has no 'actions' array; the dataset is corrupt")
        if str(self.root.resolve()) not in _WARNED:
            _WARNED.add(str(self.root.resolve()))
            log.warning(f"vfmbench: warning: {self.root} has no checksums (dataset format {self.version}, an older "
                        f"vfmbench); its data is read unverified: collect it again to have it verified")

    def _check_rows(self, name: str, arr: Any) -> None:
        rows = self.rows(name)
        if arr.shape[0] < rows:
            raise DatasetError(
                f"{self.root / STORE}/{name} has {arr.shape[0]} rows but the manifest commits {rows}; "
                f"the dataset is corrupt: collect it again"
            )

    def _check_v2(self) -> None:
        """Cheap checks on open: every array the manifest records matches it, and every chunk file
        holding committed rows exists (full chunks with their recorded size)."""
        for name, rec in self.manifest["arrays"].items():
            try:
                arr = self.group[name]
            except Exception as exc:
                raise DatasetError(f"{self.root / STORE}/{name} is missing or unreadable ({exc}) but "
                                   f"{self.root / MANIFEST} records it; {DAMAGED}") from exc
            self._check_rows(name, arr)
            if (np.dtype(rec["dtype"]) != arr.dtype or list(arr.shape[1:]) != rec["shape"]
                    or tuple(arr.chunks) != (rec["chunk_rows"], *arr.shape[1:])):
                raise DatasetError(
                    f"{self.root / STORE}/{name}/zarr.json describes {arr.dtype} rows of shape {list(arr.shape[1:])} "
                    f"in chunks {list(arr.chunks)}, but {self.root / MANIFEST} records {rec['dtype']} rows of shape "
                    f"{rec['shape']} in chunks of {rec['chunk_rows']} rows; {DAMAGED}"
                )
            self._arrays[name] = arr
            rows, per_chunk = self.rows(name), rec["chunk_rows"]
            if arr.dtype.itemsize * math.prod(arr.shape[1:]) == 0 or rows == 0:
                continue  # nothing is stored
            full = rec["chunks"]
            if len(full) != rows // per_chunk:
                raise DatasetError(f"{self.root / MANIFEST}: arrays.{name}.chunks records {len(full)} full chunks, "
                                   f"but {rows} committed rows in chunks of {per_chunk} fill {rows // per_chunk}; "
                                   f"the manifest is damaged: collect the dataset again")
            store = str(self.root / STORE)
            for i in range(math.ceil(rows / per_chunk)):
                key = f"{name}/{chunk_key(arr, i)}"
                label = functools.partial(self._chunk_label, name, key, i)  # formatted only for errors
                size, digest = full[i] if i < len(full) else (None, None)
                try:
                    actual = os.stat(f"{store}/{key}").st_size
                except FileNotFoundError:
                    raise DatasetError(f"{label()} is missing; {DAMAGED}") from None
                if size is not None and actual != size:
                    raise DatasetError(f"{label()} has a size of {actual} bytes, not the {size} recorded when it "
                                       f"was written; {DAMAGED}")
                self._checks[key] = (size, digest, label)
        if self.complete and "fingerprint" in self.manifest and self.manifest["fingerprint"] != self.compute_fingerprint():
            raise DatasetError(f"{self.root / MANIFEST}: the recorded fingerprint does not match the recorded content "
                               f"(the manifest was edited); the manifest is damaged: collect the dataset again")

    def _chunk_label(self, name: str, key: str, index: int) -> str:
        per_chunk = self.manifest["arrays"][name]["chunk_rows"] if self.version >= 2 else self.group[name].chunks[0]
        first, last = index * per_chunk, min(self.rows(name), (index + 1) * per_chunk) - 1
        if self.is_frame_array(name):
            e0, e1 = (int(np.searchsorted(self._starts, r, side="right")) - 1 for r in (first, last))
        else:
            e0, e1 = first, last
        episodes = f"episode {e0}" if e0 == e1 else f"episodes {e0}-{e1}"
        return f"{self.root / STORE / key} (array {name!r}, rows {first}-{last}, {episodes})"

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
    def verified(self) -> bool:
        """Whether reads are checked against checksums (datasets of format 2 and later)."""
        return self.version >= 2

    @property
    def episode_starts(self) -> np.ndarray:
        return self._starts.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.array([e["length"] for e in self.manifest["episodes"]], dtype=np.int64)

    def episode_index(self) -> np.ndarray:
        """For every frame, the index of its episode: ``[N]`` int64."""
        return np.repeat(np.arange(self.num_episodes), self.episode_lengths)

    @property
    def arrays(self) -> list[str]:
        """Names of the committed arrays."""
        if self.version >= 2:
            return sorted(self.manifest["arrays"])
        return sorted(self.group.array_keys())

    def has(self, name: str) -> bool:
        return name in self.arrays

    def is_frame_array(self, name: str) -> bool:
        """Whether `name` has a row per frame (else a row per episode)."""
        if self.version >= 2 and name in self.manifest["arrays"]:
            return self.manifest["arrays"][name]["per"] == "frame"
        return name in FRAME_ARRAYS

    def rows(self, name: str) -> int:
        """Committed rows of array `name`: frames, or episodes for per-episode arrays."""
        return self.n_frames if self.is_frame_array(name) else self.num_episodes

    # -- data -----------------------------------------------------------------------------
    def _array(self, name: str) -> Any:
        if not self.has(name):
            present = ", ".join(self.arrays) or "none"
            raise DatasetError(f"{self.root} has no array {name!r}; it has: {present}")
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    def load(self, name: str) -> np.ndarray:
        """The committed rows of array `name` as a NumPy array, verified against their checksums."""
        data = self._read(name, 0, self.rows(name))
        self._verify_rows(name, 0, data)
        return data

    def iter_chunks(self, name: str, rows: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, block)`` of array `name` in blocks of `rows` rows from row `start`
        (bounded memory); a block is yielded only once its rows are verified."""
        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        total = self.rows(name)
        self._array(name)
        tail_from = self._tail_start(name)
        tail: np.ndarray | None = None
        for s in range(start, total, rows):
            e = min(total, s + rows)
            parts = []
            if s < tail_from:
                parts.append(self._read(name, s, min(e, tail_from)))
            if e > tail_from:
                if tail is None:  # the partly filled last chunk: read and verify it whole, once
                    tail = self._read(name, tail_from, total)
                    self._verify_rows(name, tail_from, tail)
                parts.append(tail[max(s, tail_from) - tail_from : e - tail_from])
            yield s, parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _tail_start(self, name: str) -> int:
        """First row checked by episode checksums rather than chunk checksums: the start of the
        first episode with rows in a chunk that was not full when last written."""
        total = self.rows(name)
        if self.version < 2:
            return total
        full_rows = len(self.manifest["arrays"][name]["chunks"]) * self.manifest["arrays"][name]["chunk_rows"]
        if full_rows >= total:
            return total
        if not self.is_frame_array(name):
            return full_rows
        return int(self._starts[np.searchsorted(self._starts, full_rows, side="right") - 1])

    def _read(self, name: str, start: int, stop: int) -> np.ndarray:
        arr = self._array(name)
        try:
            return np.asarray(arr[start:stop])
        except DatasetError:
            raise
        except Exception as exc:  # a chunk that does not decode (truncated, overwritten)
            raise DatasetError(f"{self._undecodable(name, start, stop)} cannot be read ({type(exc).__name__}: {exc}); "
                               f"{DAMAGED}") from exc

    def _undecodable(self, name: str, start: int, stop: int) -> str:
        """Label of the first chunk of rows [start, stop) of `name` that fails to decode."""
        arr = self._array(name)
        per_chunk = arr.chunks[0]
        for i in range(start // per_chunk, math.ceil(stop / per_chunk)):
            try:
                np.asarray(arr[i * per_chunk : min(stop, (i + 1) * per_chunk)])
            except Exception:
                return self._chunk_label(name, f"{name}/{chunk_key(arr, i)}", i)
        return f"{self.root / STORE / name} (array {name!r}, rows {start}-{stop - 1})"

    def _verify_rows(self, name: str, start: int, data: np.ndarray) -> None:
        """Check the episodes wholly inside rows [start, start + len(data)) that lie in the
        partly filled last chunk against their recorded checksums."""
        if self.version < 2:
            return
        tail_from, stop = self._tail_start(name), start + len(data)
        if stop <= tail_from:
            return
        episodes = self.manifest["episodes"]
        if self.is_frame_array(name):
            spans = [(i, ep["start"], ep["start"] + ep["length"]) for i, ep in enumerate(episodes)]
        else:
            spans = [(i, i, i + 1) for i in range(len(episodes))]
        for i, a, b in spans:
            if b <= tail_from or a < start or b > stop:
                continue
            if content_digest(data[a - start : b - start]) != episodes[i]["sha256"][name]:
                arr = self._array(name)
                per_chunk = arr.chunks[0]
                first = max(a, len(self.manifest["arrays"][name]["chunks"]) * per_chunk) // per_chunk
                files = ", ".join(str(self.root / STORE / name / chunk_key(arr, c))
                                  for c in range(first, math.ceil(b / per_chunk)))
                raise DatasetError(f"{files} (array {name!r}): the rows of episode {i} do not match the checksum "
                                   f"recorded when it was written; {DAMAGED}")

    def verify_last_chunks(self) -> None:
        """Check the rows of every array's partly filled last chunk against the episodes' checksums."""
        for name in self.arrays if self.version >= 2 else []:
            start = self._tail_start(name)
            if start < self.rows(name):
                self._verify_rows(name, start, self._read(name, start, self.rows(name)))

    def verify(self) -> None:
        """Read every committed row of every array against its checksum (format 1: compare the
        content with the fingerprint recorded at completion, if any)."""
        if self.version < 2:
            self.fingerprint()
            return
        for name in self.arrays:
            for _ in self.iter_chunks(name, max(1, self._array(name).chunks[0])):
                pass

    def fingerprint(self) -> str:
        """Content hash identifying this data; it changes whenever the content does.

        Format 2: a hash of the header and the episode list with its per-array checksums (reading
        checks the data against those). Format 1: a hash of the content as read, compared with
        the fingerprint recorded at completion."""
        if self._fingerprint is None:
            fp = self.compute_fingerprint()
            if self.version < 2 and self.complete and self.manifest.get("fingerprint") not in (None, fp):
                raise DatasetError(f"{self.root}: its content no longer matches the fingerprint recorded when it was "
                                   f"completed (a file is missing or damaged, or the collect that extended it was "
                                   f"interrupted); collect the dataset again into a new folder")
            self._fingerprint = fp
        return self._fingerprint

    def compute_fingerprint(self) -> str:
        h = hashlib.sha256()
        if self.version >= 2:
            arrays = {k: {f: r[f] for f in ("per", "dtype", "shape")} for k, r in self.manifest["arrays"].items()}
            h.update(json.dumps({"format": FORMAT, "header": self.header, "arrays": arrays,
                                 "episodes": self.manifest["episodes"]}, sort_keys=True).encode())
            return h.hexdigest()[:32]
        h.update(json.dumps(self.header, sort_keys=True).encode())
        h.update(json.dumps(self.manifest["episodes"], sort_keys=True).encode())
        for name in sorted(self.group.array_keys()):
            h.update(name.encode())
            for _, block in self.iter_chunks(name, 1024):
                h.update(np.ascontiguousarray(block).tobytes())
        return h.hexdigest()[:32]

    def __repr__(self) -> str:
        return f"EpisodeDataset({str(self.root)!r}, task={self.task.get('task')}, episodes={self.num_episodes}, frames={self.n_frames})"


# -- the manifest ---------------------------------------------------------------------------------


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; create it with: vfmbench collect --task TASK "
                           f"--out {root} (vfmbench tasks list names the tasks)")
    if not path.exists():
        raise DatasetError(
            f"{root} is not a vfmbench dataset: {MANIFEST} is missing (was the collect interrupted "
            f"before its first episode?); collect it again with: vfmbench collect --task TASK --out {root} "
            "(vfmbench tasks list names the tasks)"
        )
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetError(f"{path} is unreadable ({exc}); the dataset is corrupt: collect it again") from exc
    _validate_manifest(manifest, path)
    return manifest


def _validate_manifest(m: Any, path: Path) -> None:
    """Raise `DatasetError` naming `path` and the key unless `m` is a well-formed manifest."""

    def bad(key: str, what: str, value: Any) -> DatasetError:
        text = repr(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        return DatasetError(f"{path}: {key!r} must be {what}, got {text}; the manifest is damaged: collect the "
                            f"dataset again")

    def integer(value: Any, minimum: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    if not isinstance(m, dict):
        raise DatasetError(f"{path} does not hold a JSON object (it holds {type(m).__name__}); "
                           f"the dataset is corrupt: collect it again")
    for key in ("format", "version", "header", "episodes", "n_frames"):
        if key not in m:
            raise DatasetError(f"{path} lacks the key {key!r}; it was not written by vfmbench or is corrupt")
    if m["format"] != FORMAT:
        raise DatasetError(f"{path}: format {m['format']!r} is not {FORMAT!r}")
    if not integer(m["version"], 1):
        raise bad("version", "a positive integer", m["version"])
    if m["version"] > VERSION:
        raise DatasetError(f"{path}: dataset version {m['version']} is newer than this vfmbench reads ({VERSION}); "
                           f"upgrade vfmbench")
    if not isinstance(m["header"], dict):
        raise bad("header", "a mapping", m["header"])
    if not integer(m["n_frames"], 0):
        raise bad("n_frames", "a non-negative integer", m["n_frames"])
    if not isinstance(m["episodes"], list):
        raise bad("episodes", "a list of episode entries", m["episodes"])
    if "complete" in m and not isinstance(m["complete"], bool):
        raise bad("complete", "true or false", m["complete"])
    if "fingerprint" in m and not isinstance(m["fingerprint"], str):
        raise bad("fingerprint", "a string", m["fingerprint"])
    arrays: dict[str, Any] = {}
    if m["version"] >= 2:
        arrays = m.get("arrays")
        if not isinstance(arrays, dict):
            raise bad("arrays", "a mapping of array names to their records", arrays)
        for name, rec in arrays.items():
            where = f"arrays.{name}"
            if not isinstance(rec, dict):
                raise bad(where, "a mapping", rec)
            if rec.get("per") not in ("frame", "episode"):
                raise bad(f"{where}.per", "'frame' or 'episode'", rec.get("per"))
            try:
                np.dtype(rec.get("dtype"))
            except TypeError:
                raise bad(f"{where}.dtype", "a NumPy dtype string", rec.get("dtype")) from None
            if not isinstance(rec.get("shape"), list) or not all(integer(s, 0) for s in rec["shape"]):
                raise bad(f"{where}.shape", "a list of non-negative integers", rec.get("shape"))
            if not integer(rec.get("chunk_rows"), 1):
                raise bad(f"{where}.chunk_rows", "a positive integer", rec.get("chunk_rows"))
            chunks = rec.get("chunks")
            if not isinstance(chunks, list) or not all(
                    isinstance(c, list) and len(c) == 2 and integer(c[0], 0) and isinstance(c[1], str) for c in chunks):
                raise bad(f"{where}.chunks", "a list of [size, sha256] pairs", chunks)
    end = 0
    for i, ep in enumerate(m["episodes"]):
        where = f"episodes[{i}]"
        if not isinstance(ep, dict):
            raise bad(where, "a mapping with 'start' and 'length'", ep)
        if "start" not in ep:
            raise DatasetError(f"{path}: {where} lacks the key 'start'; the manifest is damaged: collect the dataset "
                               f"again")
        if "length" not in ep:
            raise DatasetError(f"{path}: {where} lacks the key 'length'; the manifest is damaged: collect the dataset "
                               f"again")
        if ep["start"] != end or not integer(ep["start"], 0):
            raise bad(f"{where}.start", f"{end} (where the episode before it ends)", ep["start"])
        if not integer(ep["length"], 1):
            raise bad(f"{where}.length", "a positive integer", ep["length"])
        end += ep["length"]
        if m["version"] >= 2:
            digests = ep.get("sha256")
            if not isinstance(digests, dict) or set(digests) != set(arrays) or not all(
                    isinstance(d, str) for d in digests.values()):
                raise bad(f"{where}.sha256", f"a checksum for each of the arrays {sorted(arrays)}", digests)
    if m["n_frames"] != end:
        raise bad("n_frames", f"the sum of the episode lengths ({end})", m["n_frames"])


def _describe(arrays: dict[str, tuple[str, tuple[int, ...]]]) -> str:
    return ", ".join(f"{k} ({per}, {list(shape)})" for k, (per, shape) in sorted(arrays.items()))
