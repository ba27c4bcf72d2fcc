"""Rendering preflight: find a working headless OpenGL backend before anything renders.

MuJoCo picks its GL backend from ``MUJOCO_GL`` when it is first imported, and a failed GL
initialisation can leave a process unusable, so each candidate is probed in a subprocess.
Order: the user's ``MUJOCO_GL`` if set, else EGL, then OSMesa.
"""

from __future__ import annotations

import os
import subprocess
import sys

from vfmbench.utils.errors import RenderingError

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 8, 8)
r.update_scene(mujoco.MjData(m))
assert r.render().shape == (8, 8, 3)
print("ok")
"""

_HELP = {
    "egl": "apt-get install libegl1 libgl1-mesa-dri",
    "osmesa": "apt-get install libosmesa6",
    "glfw": "a display (DISPLAY) and libglfw3; on a headless machine use MUJOCO_GL=egl instead",
}

_chosen: str | None = None


def probe_backend(backend: str, timeout: float = 60.0) -> tuple[bool, str]:
    """Try to render one frame with `backend` in a subprocess; returns (ok, error text)."""
    env = dict(os.environ, MUJOCO_GL=backend)
    if backend in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = backend
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f}s"
    if proc.returncode == 0 and "ok" in proc.stdout:
        return True, ""
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    return False, lines[-1] if lines else f"exit code {proc.returncode}"


def ensure_rendering() -> str:
    """Select a working headless GL backend (sets MUJOCO_GL) or raise RenderingError.

    Call before importing mujoco in this process. Returns the backend name.
    """
    global _chosen
    if _chosen is not None:
        return _chosen
    if "mujoco" in sys.modules and os.environ.get("MUJOCO_GL"):
        _chosen = os.environ["MUJOCO_GL"]  # already imported with a backend; trust it
        return _chosen
    requested = os.environ.get("MUJOCO_GL")
    candidates = [requested] if requested else ["egl", "osmesa"]
    failures = []
    for backend in candidates:
        ok, err = probe_backend(backend)
        if ok:
            os.environ["MUJOCO_GL"] = backend
            if backend in ("egl", "osmesa"):
                os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            _chosen = backend
            return backend
        failures.append(f"  MUJOCO_GL={backend}: {err}\n    fix: {_HELP.get(backend, 'check the backend name')}")
    hint = (
        f"MUJOCO_GL={requested} was requested explicitly; unset it to let vfmbench try egl and osmesa"
        if requested
        else "install one of the packages above (EGL works on CPU through Mesa), or set MUJOCO_GL"
    )
    raise RenderingError(
        "no working headless OpenGL backend for MuJoCo rendering:\n" + "\n".join(failures) + f"\n{hint}"
    )
