"""Robustness shifts for any MuJoCo task: ``none``, ``distractor``, ``color_easy``, ``color_hard``,
``video_easy``, ``video_hard``; and the renderer that applies them and gives ground-truth masks.

A task opts in by declaring a `SceneLayout` and rendering through `ShiftedRenderer`; the shift
is chosen by ``TaskConfig.shift`` / ``shift_options``. See docs/shifts.md.
"""

from vfmbench.tasks.shifts import distractor as _distractor  # noqa: F401  (registers distractor)
from vfmbench.tasks.shifts import color as _color  # noqa: F401  (registers color_easy, color_hard)
from vfmbench.tasks.shifts import video as _video  # noqa: F401  (registers video_easy, video_hard)
from vfmbench.tasks.shifts.base import (
    SHIFTS,
    KeepOut,
    MaskGroup,
    SceneLayout,
    Shift,
    ShiftSpec,
    Workspace,
    get_shift_spec,
    list_shifts,
    make_shift,
    register_shift,
    validate_shift,
)
from vfmbench.tasks.shifts.render import Label, ShiftedRenderer

__all__ = [
    "SHIFTS",
    "KeepOut",
    "Label",
    "MaskGroup",
    "SceneLayout",
    "Shift",
    "ShiftSpec",
    "ShiftedRenderer",
    "Workspace",
    "get_shift_spec",
    "list_shifts",
    "make_shift",
    "register_shift",
    "validate_shift",
]
