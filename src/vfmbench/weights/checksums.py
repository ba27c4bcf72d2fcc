"""sha256 of weight files, remembered in a sidecar, and checks against a weight set's published value.

A file's sha256 is computed once and kept in a ``<file>.sha256`` sidecar (keyed by size and
modification time), so that checking it on every load costs nothing after the first. For a hub
folder the checksum is that of its weights file (``model.safetensors``, else ``pytorch_model.bin``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vfmbench.utils.errors import WeightsError
from vfmbench.weights.specs import (
    HF_WEIGHT_FILES,
    OWN_FILE_HINT,
    WeightsSpec,
    installed_path,
    weights_error,
    weights_path,
)


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


def sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def cached_sha256(path: Path) -> str:
    """sha256 of `path` (a file or hub folder), remembered in a sidecar next to the file."""
    target = checksum_target(path)
    stat = target.stat()
    sidecar = sidecar_path(target)
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


def verify_weights(spec: WeightsSpec, path: Path | None = None) -> str:
    """Check the file (default: the installed one) against the spec's sha256 when known; returns
    the file's sha256."""
    path = path or installed_path(spec) or weights_path(spec)
    return checked_sha256(spec, path, path, incomplete="are incomplete",
                          mismatch="the file is corrupt or a different release — delete it and download again")


def checked_sha256(spec: WeightsSpec, target: Path, shown: Path, *, incomplete: str, mismatch: str) -> str:
    """The sha256 of `target` (remembered in a sidecar); a WeightsError about `shown` when it cannot
    be read (`incomplete`) or differs from the published one (`mismatch` says what follows)."""
    try:
        digest = cached_sha256(target)
    except (WeightsError, OSError) as exc:
        raise weights_error(spec, shown, f"{incomplete} ({exc})") from None
    if spec.sha256 is not None and digest != spec.sha256:
        raise weights_error(
            spec, shown, f"do not match their checksum (sha256 {digest}, expected {spec.sha256}); {mismatch}",
            OWN_FILE_HINT,
        )
    return digest


def weights_status(spec: WeightsSpec) -> str:
    """'missing', 'corrupt' (fails `verify_weights`) or 'installed' (passes it: present, and matching
    the published sha256 where there is one)."""
    path = installed_path(spec)
    if path is None:
        return "missing"
    try:
        verify_weights(spec, path)
    except WeightsError:
        return "corrupt"
    return "installed"


def resolve_weights(spec: WeightsSpec) -> tuple[Path, str]:
    """The installed weights of `spec` (its file, or one of its ``also_named`` files) and their
    sha256, or a WeightsError that says how to get them."""
    path = installed_path(spec)
    if path is None:
        raise weights_error(spec, weights_path(spec), "not found")
    return path, verify_weights(spec, path)
