"""Pretrained weights: where each file comes from, its checksum and licence, and where it lives.

Files live under ``$VFMBENCH_HOME/weights/<encoder>/<filename>`` (a file, or a folder in the
hub's ``save_pretrained`` layout for ``format="hf_dir"``). Nothing is downloaded implicitly: a
missing or corrupt file is an error naming the file, its source and the command that fetches
it; random weights are only ever used when asked for (``pretrained=False``).

A file's sha256 is computed once and remembered in a ``<file>.sha256`` sidecar (keyed by size
and modification time), so that checking it on every load costs nothing after the first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vfmbench.utils.errors import WeightsError
from vfmbench.utils.paths import weights_dir

HF_PREFIX = "hf://"
# Files of a hub folder that hold the weights, in the order the loaders look for them.
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class WeightsSpec:
    """One official weight set.

    source: URL, or ``hf://<hub id>`` for a model-hub repository; filename: its name on disk (a
    folder for ``hf_dir``); sha256: checksum of the file (of ``model.safetensors`` for a hub
    folder), None where no published checksum could be confirmed (the file is then checked by
    loading it); format: the checkpoint layout the loader expects ("segment_anything",
    "openai_clip", "mae_timm", "torchvision", "r3m", "vip", "hf_dir"); license: the weights'
    licence; files: for hub folders, the files to fetch.
    """

    source: str
    filename: str
    sha256: str | None
    license: str
    format: str
    size_mb: float | None = None
    files: tuple[str, ...] = ()

    @property
    def is_hub(self) -> bool:
        return self.source.startswith(HF_PREFIX)


def weights_path(encoder: str, spec: WeightsSpec) -> Path:
    """Where `encoder`'s weights file (or hub folder) is expected."""
    return weights_dir() / encoder / spec.filename


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checksum_target(path: Path) -> Path:
    """The file whose sha256 identifies the weights: `path` itself, or a hub folder's weights file."""
    if path.is_dir():
        for name in HF_WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        raise WeightsError(f"{path} is a folder without any of {', '.join(HF_WEIGHT_FILES)}")
    return path


def cached_sha256(path: Path) -> str:
    """sha256 of `path` (a file or hub folder), remembered in a sidecar next to the file."""
    target = checksum_target(path)
    stat = target.stat()
    sidecar = target.with_name(target.name + ".sha256")
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        saved = json.loads(sidecar.read_text())
        if saved.get("size") == stamp["size"] and saved.get("mtime_ns") == stamp["mtime_ns"]:
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = sha256_file(target)
    try:
        sidecar.write_text(json.dumps({**stamp, "sha256": digest}))
    except OSError:  # read-only location: compute again next time
        pass
    return digest


def _fetch_hint(encoder: str, spec: WeightsSpec) -> str:
    return (
        f"  source: {spec.source}\n"
        f"  fetch them with: vfmbench weights download {encoder}\n"
        f"  (or place the file there by hand; set VFMBENCH_HOME to use another folder)\n"
        f"  for random weights ask explicitly: create_encoder({encoder!r}, pretrained=False)"
    )


def weights_error(encoder: str, spec: WeightsSpec, path: Path, problem: str) -> WeightsError:
    """An error about `encoder`'s weights at `path` that says where they come from and how to fetch them."""
    return WeightsError(f"pretrained weights for {encoder!r} {problem}\n  file: {path}\n{_fetch_hint(encoder, spec)}")


def verify_weights(encoder: str, spec: WeightsSpec, path: Path | None = None) -> str:
    """Check the file against the spec's sha256 (when known); returns the file's sha256."""
    path = path or weights_path(encoder, spec)
    try:
        digest = cached_sha256(path)
    except WeightsError as exc:
        raise weights_error(encoder, spec, path, f"are incomplete ({exc})") from None
    if spec.sha256 is not None and digest != spec.sha256:
        raise weights_error(
            encoder, spec, path,
            f"do not match their checksum (sha256 {digest}, expected {spec.sha256}); the file is corrupt or "
            f"a different release — delete it and download again",
        )
    return digest


def resolve_weights(encoder: str, spec: WeightsSpec) -> tuple[Path, str]:
    """The local weights for `encoder` and their sha256, or a WeightsError that says how to get them."""
    path = weights_path(encoder, spec)
    if not path.exists():
        raise weights_error(encoder, spec, path, "not found")
    return path, verify_weights(encoder, spec, path)


# --------------------------------------------------------------------------------------- download

ProgressHook = Callable[[int, int | None], None]


def _download_url(url: str, dest: Path, progress: ProgressHook | None = None, chunk: int = 1 << 20) -> None:
    """Stream `url` into `dest` through a temporary file, so an interrupted download leaves nothing."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "vfmbench"})
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with urllib.request.urlopen(request) as response, os.fdopen(fd, "wb") as out:
            total = response.headers.get("Content-Length")
            total_bytes = int(total) if total else None
            done = 0
            while block := response.read(chunk):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total_bytes)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hub_file_url(repo: str, name: str) -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{repo}/resolve/main/{name}"


def _download_hub(spec: WeightsSpec, dest: Path, progress: ProgressHook | None) -> None:
    """Fetch a hub repository's `spec.files` into folder `dest`, with huggingface_hub when installed."""
    repo = spec.source[len(HF_PREFIX):]
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part"))
    try:
        try:
            import huggingface_hub
        except ImportError:
            huggingface_hub = None
        if huggingface_hub is not None:
            huggingface_hub.snapshot_download(repo, allow_patterns=list(spec.files), local_dir=staging)
            shutil.rmtree(staging / ".cache", ignore_errors=True)
        else:
            for name in spec.files:
                _download_url(_hub_file_url(repo, name), staging / name, progress)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def download_weights(encoder: str, spec: WeightsSpec, *, force: bool = False,
                     progress: ProgressHook | None = None) -> Path:
    """Fetch `encoder`'s weights into VFMBENCH_HOME and verify them; returns their path.

    An existing file is verified rather than fetched again unless `force`.
    """
    path = weights_path(encoder, spec)
    if path.exists() and not force:
        verify_weights(encoder, spec, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if spec.is_hub:
            _download_hub(spec, path, progress)
        else:
            _download_url(spec.source, path, progress)
    except OSError as exc:  # urllib's URLError/HTTPError are OSErrors
        raise WeightsError(
            f"could not download the weights of {encoder!r} from {spec.source}: {exc}\n"
            f"  download the file by other means and place it at {path}"
        ) from exc
    verify_weights(encoder, spec, path)
    return path
