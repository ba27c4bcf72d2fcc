import subprocess
import sys

import pytest

from vfmbench.utils.rendering import probe_backend

pytestmark = pytest.mark.sim


def test_egl_renders_headless():
    ok, err = probe_backend("egl")
    assert ok, err


def test_bad_backend_gives_actionable_error():
    code = (
        "import os; os.environ['MUJOCO_GL']='nonexistent_gl';"
        "from vfmbench.utils.rendering import ensure_rendering\n"
        "try:\n ensure_rendering()\nexcept Exception as e: print(type(e).__name__, e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "RenderingError" in out and "MUJOCO_GL=nonexistent_gl" in out and "unset it" in out
