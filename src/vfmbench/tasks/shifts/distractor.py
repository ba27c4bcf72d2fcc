"""``distractor``: extra geometric objects of other colours on the task's surface (paper 000 §6.1).

Distractors are visual-only geoms added to the ``mjvScene``: they are not in the physics, so
they can never obstruct the task. Their shapes, colours, sizes and places are drawn once per
episode from the episode seed, by rejection sampling inside the task's `Workspace` and away
from its `KeepOut` (the object, the goal and the gripper's path at reset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vfmbench.tasks.shifts.base import KeepOut, Shift, ShiftSpec, register_shift
from vfmbench.utils.errors import ConfigError

# Named colours (RGB 0..1). Red and dark grey are left out: Fetch's goal marker and block use them.
COLORS: dict[str, tuple[float, float, float]] = {
    "blue": (0.1, 0.25, 0.9),
    "green": (0.1, 0.75, 0.2),
    "yellow": (0.95, 0.85, 0.1),
    "cyan": (0.1, 0.8, 0.85),
    "magenta": (0.85, 0.15, 0.8),
    "orange": (1.0, 0.5, 0.05),
    "purple": (0.45, 0.2, 0.75),
    "white": (1.0, 1.0, 1.0),
    "red": (0.9, 0.1, 0.1),
    "black": (0.05, 0.05, 0.05),
}
SHAPES = ("box", "sphere", "cylinder", "capsule", "ellipsoid")


def parse_color(value: str, where: str) -> tuple[float, float, float]:
    """A named colour (see `COLORS`) or ``#rrggbb`` as RGB in [0, 1]."""
    if value in COLORS:
        return COLORS[value]
    if len(value) == 7 and value.startswith("#"):
        try:
            return tuple(int(value[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    raise ConfigError(f"{where}: {value!r} is not a colour; use #rrggbb or one of {', '.join(COLORS)}")


@dataclass
class DistractorOptions:
    """Options of the ``distractor`` shift (lengths in metres)."""

    count: int = 1  # distractors per episode
    shapes: tuple[str, ...] = ("box", "sphere", "cylinder")  # drawn uniformly per distractor
    colors: tuple[str, ...] = ("blue", "green", "yellow", "cyan", "magenta", "orange")
    size: tuple[float, float] = (0.02, 0.035)  # half-extent range, drawn uniformly
    clearance: float = 0.05  # least horizontal gap to the keep-out regions and between distractors
    max_tries: int = 5000  # rejection-sampling attempts per episode before giving up

    def validate(self) -> None:
        where = "shift 'distractor' options"
        if self.count < 1:
            raise ConfigError(f"{where}.count must be at least 1, got {self.count}")
        if not self.shapes:
            raise ConfigError(f"{where}.shapes must name at least one of {', '.join(SHAPES)}")
        for s in self.shapes:
            if s not in SHAPES:
                raise ConfigError(f"{where}.shapes: {s!r} is not one of {', '.join(SHAPES)}")
        if not self.colors:
            raise ConfigError(f"{where}.colors must name at least one colour")
        for c in self.colors:
            parse_color(c, f"{where}.colors")
        if len(self.size) != 2 or not 0 < self.size[0] <= self.size[1]:
            raise ConfigError(f"{where}.size must be [min, max] with 0 < min <= max, got {list(self.size)}")
        if self.clearance < 0:
            raise ConfigError(f"{where}.clearance must be >= 0, got {self.clearance}")
        if self.max_tries < 1:
            raise ConfigError(f"{where}.max_tries must be positive, got {self.max_tries}")


@dataclass(frozen=True)
class Distractor:
    """One placed distractor: a geom type name, half-sizes, centre, rotation, colour."""

    shape: str
    size: tuple[float, float, float]  # MuJoCo geom size for this shape
    pos: tuple[float, float, float]
    yaw: float
    rgb: tuple[float, float, float]
    radius: float  # horizontal footprint radius


def _geom_size(shape: str, s: float) -> tuple[tuple[float, float, float], float, float]:
    """MuJoCo size, footprint radius and half-height of a `shape` with half-extent `s`."""
    table = {
        "box": ((s, s, s), s * np.sqrt(2), s),
        "sphere": ((s, s, s), s, s),
        "cylinder": ((s, s, 0.0), s, s),
        "capsule": ((0.6 * s, 0.4 * s, 0.0), 0.6 * s, s),  # radius 0.6 s, total height 2 s
        "ellipsoid": ((s, 0.7 * s, 0.8 * s), s, 0.8 * s),
    }
    return table[shape]


def _segment_distance_xy(p: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Horizontal distance from point `p` [2] to each segment `seg` [K, 2, 3]: [K]."""
    a, b = seg[:, 0, :2], seg[:, 1, :2]
    ab = b - a
    denom = np.maximum((ab * ab).sum(-1), 1e-12)
    u = np.clip(((p - a) * ab).sum(-1) / denom, 0.0, 1.0)
    return np.linalg.norm(a + u[:, None] * ab - p, axis=-1)


class DistractorShift(Shift):
    """Adds `DistractorOptions.count` visual-only objects to the scene."""

    options: DistractorOptions

    def __init__(self, name: str, options: DistractorOptions, model: Any, layout: Any, resolution: int):
        super().__init__(name, options, model, layout, resolution)
        if layout.workspace is None:
            raise ConfigError(f"shift {name!r} needs a task that declares a workspace for distractors")
        self._colors = [parse_color(c, "colors") for c in options.colors]
        self.distractors: list[Distractor] = []

    def on_reset(self, seed: int, keep_out: KeepOut) -> tuple[int, ...]:
        super().on_reset(seed, keep_out)
        self.distractors = self._place(self.episode_rng(), keep_out)
        return ()

    def _place(self, rng: np.random.Generator, keep_out: KeepOut) -> list[Distractor]:
        o = self.options
        ws = self.layout.workspace
        low, high = np.asarray(ws.low, float), np.asarray(ws.high, float)
        placed: list[Distractor] = []
        for _ in range(o.max_tries):
            if len(placed) == o.count:
                return placed
            shape = o.shapes[rng.integers(len(o.shapes))]
            size, radius, half_height = _geom_size(shape, float(rng.uniform(*o.size)))
            if np.any(high - low < 2 * radius):
                continue
            xy = rng.uniform(low + radius, high - radius)
            yaw = float(rng.uniform(0, np.pi))
            rgb = self._colors[rng.integers(len(self._colors))]
            if len(keep_out.radius) and np.any(
                _segment_distance_xy(xy, keep_out.segments) < keep_out.radius + radius + o.clearance
            ):
                continue
            if any(np.hypot(*(xy - d.pos[:2])) < d.radius + radius + o.clearance for d in placed):
                continue
            pos = (float(xy[0]), float(xy[1]), ws.z + half_height)
            placed.append(Distractor(shape, size, pos, yaw, rgb, radius))
        if len(placed) < o.count:
            raise ConfigError(
                f"shift 'distractor': placed only {len(placed)} of {o.count} distractors in {o.max_tries} tries "
                f"(episode seed {self.seed}); lower count, size or clearance"
            )
        return placed

    def decorate_scene(self, scene: Any, t: int) -> None:
        import mujoco

        if scene.ngeom + len(self.distractors) > scene.maxgeom:
            raise RuntimeError(f"the scene has no room for {len(self.distractors)} distractor geoms")
        for d in self.distractors:
            c, s = np.cos(d.yaw), np.sin(d.yaw)
            rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            geom = scene.geoms[scene.ngeom]
            mujoco.mjv_initGeom(
                geom,
                int(getattr(mujoco.mjtGeom, f"mjGEOM_{d.shape.upper()}")),
                np.asarray(d.size, np.float64),
                np.asarray(d.pos, np.float64),
                rot.ravel(),
                np.array([*d.rgb, 1.0], np.float32),
            )
            # decor geoms show up in segmentation as (objid -1, mjOBJ_UNKNOWN): never task-relevant
            geom.objtype = mujoco.mjtObj.mjOBJ_UNKNOWN
            geom.objid = -1
            geom.category = mujoco.mjtCatBit.mjCAT_DECOR
            scene.ngeom += 1


register_shift(
    ShiftSpec(
        "distractor",
        "extra geometric objects of other colours on the table, never overlapping the object, goal or "
        "gripper path at reset (paper 000 §6.1)",
        DistractorShift,
        DistractorOptions,
    )
)
