"""Embedding cache: frozen-encoder embeddings of a dataset are computed once and reused.

The key is a hash of everything that determines the numbers: the encoder's identity (name,
weights checksum or random seed, preprocessing, options such as pooling), the dataset's
content fingerprint, which array (pixels or goal_pixels), the output kind (pooled or
spatial) and the compute precision. Change any of them and the cache misses.

Entries are computed in a temporary folder ``.tmp-<key>-<pid>-<ns>`` and renamed into place
only when complete, so a crash never leaves a partial entry. A process that needs an entry
another live process on the machine is computing waits for it instead of computing it again.
An interrupted computation keeps its temporary folder with a record of the rows done; the next
computation of the same key (in any process, once the first has ended) takes it over and
resumes from there. Temporary
folders of processes that have ended are removed when they hold nothing to resume, or when
they were last written more than `STALE_SECONDS` ago.

Every complete entry records the size and SHA-256 of each of its chunk files in ``meta.json``.
Opening an entry checks that they all exist with their sizes; reading checks each chunk's
bytes as zarr reads it (pooled embeddings are read whole on opening). A damaged entry is
recomputed (with a warning) rather than served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vfmbench.data.episodes import bytes_digest, chunk_key, verifying_store
from vfmbench.data.episodes import EpisodeDataset
from vfmbench.encoders.base import Encoder
from vfmbench.utils.errors import ConfigError, DatasetError
from vfmbench.utils.io import pid_alive, read_json, write_json_atomic
from vfmbench.utils.paths import cache_dir

CACHE_VERSION = 2  # 2: entries record chunk checksums
STALE_SECONDS = 24 * 3600  # a dead process's resumable partial entry is kept this long
PROGRESS_EVERY = 1.0  # seconds between records of the rows done
CHUNK_BYTES = 8 << 20  # about 8 MB chunks
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_ACTIVE: set[str] = set()  # temporary folders this process is writing now

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    keys: list[str] = field(default_factory=list)
    resumed: int = 0  # rows taken over from interrupted computations instead of computed again
    recomputed_damaged: int = 0  # damaged entries computed again
    interrupted: dict[str, Any] | None = None  # the last computation that stopped: key, done, total, path


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
        is a NumPy array for pooled embeddings and a read-only zarr array for spatial ones
        (whose chunks are checked as they are read).
        """
        if encoder.trainable:
            raise ConfigError(f"encoder {encoder.name!r} trains with the policy; its embeddings cannot be cached")
        if precision not in _DTYPES:
            raise ConfigError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not dataset.has(array):
            raise DatasetError(f"{dataset.root} has no array {array!r} to embed; it has: "
                               f"{', '.join(dataset.arrays) or 'none'}")
        total = dataset.rows(array)
        if total == 0:
            raise DatasetError(f"{dataset.root} has no committed rows of {array!r} yet; collect some episodes first")
        key = self.key(encoder, dataset, array, spatial, precision)
        entry = self.root / key
        self.clean_stale()
        self.stats.keys.append(key)
        if (entry / "meta.json").exists():
            try:
                result = self._open(entry, spatial, key, total)
            except DatasetError as exc:
                log.warning(f"vfmbench: warning: cache entry {entry} is damaged ({exc}); computing it again")
                self._discard(entry)
                self.stats.recomputed_damaged += 1
            else:
                self.stats.hits += 1
                return result
        if self._wait_for_other_writer(key, entry):
            self.stats.hits += 1
            return self._open(entry, spatial, key, total)
        self.stats.misses += 1
        self._compute(entry, encoder, dataset, array, spatial, batch_size, device, precision, progress)
        return self._open(entry, spatial, key, total)

    def _wait_for_other_writer(self, key: str, entry: Path, poll: float = 1.0) -> bool:
        """Wait while another live process on this machine computes `key` (a sweep's jobs of one
        frozen encoder start side by side): True once its entry is complete, False when no one
        is computing it (any more), so the caller computes it (or resumes what an ended one left)."""
        waited = False
        while not (entry / "meta.json").exists():
            others = [p for p in self.root.glob(f".tmp-{key}-*")
                      if p.name not in _ACTIVE and _owner_state(p) == "running"]
            if not others:
                return False
            if not waited:
                log.warning("vfmbench: process %s is computing these embeddings (%s); waiting for it",
                            others[0].name.split("-")[2], others[0])
                waited = True
            time.sleep(poll)
        return True

    # -- reading ------------------------------------------------------------------------------
    def _open(self, entry: Path, spatial: bool, key: str, rows: int):
        """The entry's embeddings, after checking them against ``meta.json`` (DatasetError if damaged)."""
        import zarr

        meta_path = entry / "meta.json"
        try:
            meta = read_json(meta_path)
        except (ValueError, OSError) as exc:
            raise DatasetError(f"{meta_path} is unreadable ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("chunks"), list):
            raise DatasetError(f"{meta_path} does not describe the entry {key}")
        shape = meta.get("shape")
        if not isinstance(shape, list) or not shape or shape[0] != rows:
            raise DatasetError(f"{meta_path} records shape {shape}, not {rows} rows")
        store_root = entry / "embeddings.zarr"
        advice = f"the cache entry is damaged: delete {entry} and run again to compute it anew"
        checks: dict[str, tuple[int | None, str | None, str]] = {}
        try:
            arr = zarr.open_array(store=verifying_store(store_root, checks, advice), mode="r")
        except Exception as exc:
            raise DatasetError(f"{store_root} cannot be opened ({exc})") from exc
        if list(arr.shape) != shape or len(meta["chunks"]) != -(-rows // arr.chunks[0]):
            raise DatasetError(f"{store_root} does not match {meta_path} (shape {list(arr.shape)}, chunks)")
        for i, record in enumerate(meta["chunks"]):
            if not (isinstance(record, list) and len(record) == 2):
                raise DatasetError(f"{meta_path}: chunk record {i} is malformed")
            size, digest = record
            name = chunk_key(arr, i)
            path = store_root / name
            if not path.is_file():
                raise DatasetError(f"{path} is missing")
            if path.stat().st_size != size:
                raise DatasetError(f"{path} has a size of {path.stat().st_size} bytes, not the recorded {size}")
            checks[name] = (size, digest, str(path))
        if spatial:
            return arr
        try:
            return np.asarray(arr[:])
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"{store_root} cannot be read ({type(exc).__name__}: {exc})") from exc

    # -- computing ----------------------------------------------------------------------------
    def _compute(self, entry: Path, encoder: Encoder, dataset: EpisodeDataset, array: str, spatial: bool,
                 batch_size: int, device: str | torch.device | None, precision: str, progress: bool) -> None:
        import zarr

        device = torch.device(device) if device is not None else default_device()
        dtype = _DTYPES[precision]
        total = dataset.rows(array)
        key = entry.name
        tmp, done = self._resume(key, total)
        if tmp is None:
            tmp, done = self.root / f".tmp-{key}-{os.getpid()}-{time.time_ns()}", 0
            tmp.mkdir(parents=True)
            _write_owner(tmp)
        _ACTIVE.add(tmp.name)
        self.stats.resumed += done
        out = None
        if done:
            with zarr.config.set({"array.write_empty_chunks": True}):
                out = zarr.open_array(str(tmp / "embeddings.zarr"), mode="r+")
        last_record = time.monotonic()
        try:
            encoder = encoder.to(device).eval()
            bar = tqdm(total=total, initial=done, desc=f"embed {encoder.name} {array}", unit="img",
                       disable=not progress)
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                for start, block in dataset.iter_chunks(array, batch_size, start=done):
                    x = torch.from_numpy(block).to(device, non_blocking=True)
                    y = encoder.spatial_features(x) if spatial else encoder(x)
                    y = y.float().cpu().numpy()
                    if out is None:
                        with zarr.config.set({"array.write_empty_chunks": True}):  # every chunk gets a file
                            out = zarr.create_array(
                                str(tmp / "embeddings.zarr"), shape=(total, *y.shape[1:]), dtype="float32",
                                chunks=(max(1, min(total, CHUNK_BYTES // max(1, y[0].nbytes))), *y.shape[1:]),
                            )
                    out[start : start + len(y)] = y
                    done = start + len(y)
                    bar.update(len(y))
                    if time.monotonic() - last_record >= PROGRESS_EVERY:
                        _record_progress(tmp, key, done, total)
                        last_record = time.monotonic()
            bar.close()
            assert out is not None and done == total
            chunks = []
            for i in range(-(-total // out.chunks[0])):
                data = (tmp / "embeddings.zarr" / chunk_key(out, i)).read_bytes()
                chunks.append([len(data), bytes_digest(data)])
            write_json_atomic(tmp / "meta.json", {
                **self.identity(encoder, dataset, array, spatial, precision),
                "key": key,
                "dataset_path": str(dataset.root.absolute()),
                "shape": list(out.shape),
                "chunks": chunks,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            })
            (tmp / "progress.json").unlink(missing_ok=True)
            (tmp / "owner.json").unlink(missing_ok=True)
            try:
                tmp.rename(entry)
            except OSError:
                if not (entry / "meta.json").exists():
                    raise
                shutil.rmtree(tmp)  # a concurrent writer won; keep theirs
        except BaseException:
            if out is not None and done > 0:  # keep the rows done for the next run to resume
                try:
                    _record_progress(tmp, key, done, total)
                    _write_owner(tmp, computing=False)  # resumable at once, by any process
                    self.stats.interrupted = {"key": key, "done": done, "total": total, "path": str(tmp)}
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            _ACTIVE.discard(tmp.name)

    def _resume(self, key: str, total: int) -> tuple[Path | None, int]:
        """Take over the partial computation of `key` that an ended process left, if any."""
        for old in sorted(self.root.glob(f".tmp-{key}-*")) if self.root.exists() else []:
            if _owner_state(old) != "ended" or not (old / "progress.json").exists():
                continue
            new = self.root / f".tmp-{key}-{os.getpid()}-{time.time_ns()}"
            try:
                old.rename(new)  # atomic: of two processes resuming at once, one gets it
            except OSError:
                continue
            _write_owner(new)
            try:
                record = read_json(new / "progress.json")
                done = int(record["done"])
                import zarr

                arr = zarr.open_array(str(new / "embeddings.zarr"), mode="r")
                ok = (record.get("key") == key and record.get("total") == total and 0 < done <= total
                      and arr.shape[0] == total
                      and all((new / "embeddings.zarr" / chunk_key(arr, i)).is_file()
                              for i in range(-(-done // arr.chunks[0]))))
            except Exception:
                ok = False
            if ok:
                return new, done
            shutil.rmtree(new, ignore_errors=True)
        return None, 0

    def clean_stale(self) -> list[Path]:
        """Remove temporary folders left by processes that have ended: at once when they hold
        nothing to resume, after `STALE_SECONDS` when they do; returns what was removed."""
        removed = []
        if not self.root.exists():
            return removed
        now = time.time()
        for path in self.root.iterdir():
            if path.name.startswith(".damaged-"):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
                continue
            if not path.name.startswith(".tmp-") or path.name in _ACTIVE:
                continue
            state = _owner_state(path)
            age = now - _last_written(path)
            resumable = (path / "progress.json").exists()
            if (state == "ended" and (not resumable or age > STALE_SECONDS)) or (state == "unknown" and age > STALE_SECONDS):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def _discard(self, entry: Path) -> None:
        trash = self.root / f".damaged-{entry.name}-{os.getpid()}-{time.time_ns()}"
        try:
            entry.rename(trash)  # out of the way at once, for other readers too
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def entries(self) -> list[dict[str, Any]]:
        """Metadata of every cached entry (entries whose meta.json is unreadable are left out)."""
        if not self.root.exists():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.name.startswith(".") or not (p / "meta.json").exists():
                continue
            try:
                meta = read_json(p / "meta.json")
            except (ValueError, OSError):
                continue
            if isinstance(meta, dict):
                out.append(dict(meta, key=p.name))
        return out


def _write_owner(tmp: Path, computing: bool = True) -> None:
    """``owner.json``: this process, its machine, and whether it is computing into `tmp` now (a
    live process whose computation failed or was interrupted keeps the folder for resuming)."""
    write_json_atomic(tmp / "owner.json", {"pid": os.getpid(), "host": socket.gethostname(),
                                           "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "computing": computing})


def _record_progress(tmp: Path, key: str, done: int, total: int) -> None:
    write_json_atomic(tmp / "progress.json", {"key": key, "done": done, "total": total})


def _owner_state(tmp: Path) -> str:
    """"running", "ended" or "unknown" (another machine, or an old name without a pid) for a
    temporary folder ``.tmp-<key>-<pid>-<ns>``; the pid in the name is its owner (taking a folder
    over renames it), ``owner.json`` says on which machine and whether the computation ended
    while its process lives on."""
    parts = tmp.name.split("-")
    if len(parts) != 4 or not parts[2].isdigit():
        return "unknown"
    pid = int(parts[2])
    try:
        owner = read_json(tmp / "owner.json")
        if int(owner["pid"]) != pid:
            return "running"  # being taken over at this moment
        if owner["host"] != socket.gethostname():
            return "unknown"
        if owner.get("computing") is False:
            return "ended"  # its owner lives on, but this computation failed or was interrupted
    except (OSError, ValueError, KeyError, TypeError):
        pass  # being created, or its record is lost: judge by the pid in the name
    if pid == os.getpid():
        return "running" if tmp.name in _ACTIVE else "ended"
    return "running" if pid_alive(pid) else "ended"


def _last_written(path: Path) -> float:
    times = [path.stat().st_mtime]
    for name in ("progress.json", "owner.json"):
        try:
            times.append((path / name).stat().st_mtime)
        except OSError:
            pass
    return max(times)
