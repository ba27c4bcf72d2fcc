"""Atomic file writes: a crash never leaves a half-written JSON file behind."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over `path`.

    The file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask, so
    0644 under the usual umask 022), unlike `tempfile.mkstemp`'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, exclusively created file beside `path`, opened for writing with mode 0666 & ~umask."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files `write_json_atomic` left in `folder` when the process writing
    them ended before renaming them into place (their names carry its pid); returns them."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        parts = path.name.rsplit(".", 3)  # ".<name>", "<pid>", "<random>", "tmp"
        if len(parts) == 4 and parts[1].isdigit() and not pid_alive(int(parts[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def exit_with_parent(parent: int) -> None:
    """In a worker process: end it when its parent `parent` is gone (killed, even with -9), so
    no orphan keeps working on files a rerun takes over. Call it as the pool's initializer."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_json(path: str | Path) -> Any:
    """The JSON document in `path`. Raises `DamagedFileError` (a `ValueError`) naming the file when
    it is not valid JSON, and `OSError` when it cannot be read."""
    from vfmbench.utils.errors import DamagedFileError

    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedFileError(f"{path} is not valid JSON ({exc}): the file is damaged or was cut short") from None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
