"""Fetching weight sets into ``$VFMBENCH_HOME/weights`` (only ever when asked: `download_weights`).

URLs are fetched with `pooch` (HTTP(S), FTP), which checks the published sha256 (``known_hash``)
before the file is kept; ``file://`` URLs (local mirrors) are copied. Hub repositories
(``hf://<id>``) are fetched with `huggingface_hub` when it is installed, else file by file with
pooch from ``$HF_ENDPOINT`` (default https://huggingface.co). Everything is fetched into a
``<filename>.*.part`` staging folder next to the final path and moved into place only once it is
complete and verified, so an interrupted or failed download leaves nothing at the final path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from vfmbench.utils.errors import WeightsError
from vfmbench.weights.checksums import checked_sha256, sidecar_path, verify_weights
from vfmbench.weights.specs import (
    HF_PREFIX,
    HF_WEIGHT_FILES,
    OWN_FILE_HINT,
    WeightsSpec,
    installed_path,
    weights_error,
    weights_path,
)

CHUNK = 1 << 20  # bytes per read (pooch's default of 1 KiB is slow for GB files)
_HASH_MISMATCH = "does not match the known hash"  # pooch's ValueError on a sha256 mismatch


def download_weights(spec: WeightsSpec, *, force: bool = False, progress: bool = False) -> Path:
    """Fetch weight set `spec` into VFMBENCH_HOME and verify it; returns its path.

    An existing file (the spec's, or one of its ``also_named`` files) is verified rather than
    fetched again unless `force`. `progress` shows a progress bar per file (on stderr). Failures
    raise WeightsError naming the file, the source and the command to retry; nothing is left at
    the final path.
    """
    present = installed_path(spec)
    if present is not None and not force:
        verify_weights(spec, present)
        return present
    path = weights_path(spec)
    made_folder = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".", suffix=".part"))
    done = False
    try:
        fetched = staging / spec.filename
        try:
            if spec.is_hub:
                _fetch_hub(spec, fetched, progress)
            else:
                _fetch_url(spec.source, fetched, spec.sha256, progress, label=spec.name)
        except ValueError as exc:
            if _HASH_MISMATCH not in str(exc):
                raise _download_error(spec, path, exc) from exc
            raise weights_error(
                spec, path,
                f"downloaded from the source do not match their checksum, so nothing was saved ({exc})",
                OWN_FILE_HINT,
            ) from None
        except OSError as exc:  # requests' and huggingface_hub's errors are OSErrors too
            raise _download_error(spec, path, exc) from exc
        _check(spec, fetched, path)
        _move_into_place(fetched, path)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made_folder and not done and not any(path.parent.iterdir()):
            path.parent.rmdir()  # a failed first download leaves no empty weight-set folder behind
    return path


def _download_error(spec: WeightsSpec, path: Path, exc: BaseException) -> WeightsError:
    return WeightsError(
        f"could not download the weights of {spec.name!r} from {spec.source}: {exc}\n"
        f"  file: {path} (nothing was saved there)\n"
        f"  retry with: {spec.fetch_command}\n"
        f"  or download the file by other means, place it at {path} and check it with: "
        f"vfmbench weights verify {spec.name}"
    )


def _check(spec: WeightsSpec, fetched: Path, path: Path) -> None:
    """Check the fetched (staged) weights (and remember their sha256); a WeightsError about `path` if
    they are incomplete or do not match."""
    checked_sha256(spec, fetched, path, incomplete="were downloaded incomplete, so nothing was saved",
                   mismatch="they were downloaded from the source, so nothing was saved")


def _move_into_place(fetched: Path, path: Path) -> None:
    """Move a verified file (with its checksum sidecar) or hub folder from staging to `path`."""
    if fetched.is_dir():
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(fetched, path)
        return
    if path.is_dir():
        shutil.rmtree(path)
    os.replace(fetched, path)  # atomic on one filesystem; keeps the mtime the sidecar is keyed on
    sidecar = sidecar_path(fetched)
    if sidecar.exists():
        os.replace(sidecar, sidecar_path(path))


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's INFO log ("Downloading ...", "use this value as known_hash"): our errors and
    the CLI say what matters."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class _ProgressBar:
    """A tqdm bar named `label`, behind the interface pooch's downloaders drive (``total``, ``update``,
    ``reset``, ``close``). Always true: pooch tests the bar's truth, and a tqdm's is its total."""

    def __init__(self, label: str):
        from tqdm.auto import tqdm

        self._bar = tqdm(desc=label, unit="B", unit_scale=True, unit_divisor=1024)
        self._closed = False

    @property
    def total(self) -> float | None:
        return self._bar.total

    @total.setter
    def total(self, value: int) -> None:
        self._bar.total = value or None
        self._bar.refresh()

    def update(self, n: int) -> None:  # pooch counts whole chunks, then tops up with reset(); update(total)
        if self._bar.total:
            n = max(0, min(n, self._bar.total - self._bar.n))
        self._bar.update(n)

    def reset(self) -> None:  # keep the count and the rate: update() never passes the total
        pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bar.close()

    def __bool__(self) -> bool:
        return True


def _fetch_url(url: str, dest: Path, sha256: str | None, progress: bool, label: str) -> None:
    """Fetch `url` to `dest` (in a staging folder), checking `sha256` when given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("file://"):  # a local mirror; pooch speaks HTTP(S), FTP, SFTP and DOI only
        shutil.copyfile(urllib.request.url2pathname(urllib.parse.urlparse(url).path), dest)
        return
    import pooch

    bar = _ProgressBar(label) if progress else None
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https"):
        downloader = pooch.HTTPDownloader(progressbar=bar or False, chunk_size=CHUNK,
                                          headers={"User-Agent": "vfmbench"})
    else:
        downloader = pooch.choose_downloader(url, progressbar=bar or False)
    try:
        with _quiet_pooch():
            pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None, fname=dest.name,
                           path=dest.parent, downloader=downloader)
    finally:
        if bar is not None:
            bar.close()


def hub_file_url(repo: str, name: str) -> str:
    """URL of file `name` of hub repository `repo` on ``$HF_ENDPOINT`` (default https://huggingface.co)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{repo}/resolve/main/{name}"


def _fetch_hub(spec: WeightsSpec, dest: Path, progress: bool) -> None:
    """Fetch the hub repository's `spec.files` into folder `dest` (in a staging folder)."""
    repo = spec.source[len(HF_PREFIX):]
    try:
        import huggingface_hub
    except ImportError:
        huggingface_hub = None
    if huggingface_hub is not None:  # its own progress bars, HF_ENDPOINT and token handling
        huggingface_hub.snapshot_download(repo, allow_patterns=list(spec.files), local_dir=dest)
        shutil.rmtree(dest / ".cache", ignore_errors=True)
        return
    weights_file = next((f for f in HF_WEIGHT_FILES if f in spec.files), None)
    for name in spec.files:
        _fetch_url(hub_file_url(repo, name), dest / name, spec.sha256 if name == weights_file else None,
                   progress, label=f"{spec.name}/{name}")

