"""The shift contract, the scene layout a MuJoCo task declares, and the shift registry.

A *shift* changes what the camera sees at evaluation time without touching the task's physics
or state. `ShiftedRenderer` (``render.py``) calls its three hooks:

- `Shift.on_reset` once per episode (recolour the model, place distractors), seeded by the
  episode seed so the same seed gives the same frames;
- `Shift.decorate_scene` after every ``mjv_updateScene`` (add visual-only geoms, move lights);
- `Shift.postprocess` on every RGB frame, with a label map from segmentation when the shift
  asks for one (composite video backgrounds).

A task describes its scene once with a `SceneLayout`: which geoms are backdrop, which are the
surface the task acts on, which are bodies, where distractors may stand, and which parts are
task-relevant for ground-truth masks.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vfmbench.utils.config import from_dict
from vfmbench.registry import Registry
from vfmbench.utils.errors import ConfigError


@dataclass(frozen=True)
class Workspace:
    """A rectangle on a horizontal surface where distractors may stand (world metres)."""

    low: tuple[float, float]  # (x, y) corner
    high: tuple[float, float]  # (x, y) corner
    z: float  # height of the surface


@dataclass(frozen=True)
class MaskGroup:
    """Task-relevant parts of one kind (e.g. the object): model geom ids and site ids."""

    geoms: tuple[int, ...] = ()
    sites: tuple[int, ...] = ()


@dataclass(frozen=True)
class SceneLayout:
    """How a MuJoCo task's scene splits into parts that shifts and masks treat differently.

    - ``backdrop_geoms``: far background seen behind the task (with the sky, what ``video_easy``
      replaces and colour shifts treat as background), e.g. Fetch's floor;
    - ``surface_geoms``: the floor or table the task acts on (``video_hard`` replaces it too);
    - ``body_geoms``: every other visible geom (robot, objects);
    - ``self_geoms`` / ``self_materials``: the agent, which colour shifts give DMC-GB's
      ``self_rgb`` (materials take it exactly, as DMControl's ``self`` material; geoms are shifted
      so that their mean colour becomes it);
    - ``texture_recipes``: texture id -> the XML attributes of a builtin texture (skybox,
      checker floor), so colour shifts can have MuJoCo rebuild it with new colours exactly;
    - ``workspace``: where distractors may stand (None: the task has no room for them);
    - ``mask_groups``: named task-relevant parts for ground-truth masks.
    """

    backdrop_geoms: tuple[int, ...] = ()
    surface_geoms: tuple[int, ...] = ()
    body_geoms: tuple[int, ...] = ()
    workspace: Workspace | None = None
    mask_groups: Mapping[str, MaskGroup] = field(default_factory=dict)
    self_geoms: tuple[int, ...] = ()
    self_materials: tuple[int, ...] = ()
    texture_recipes: Mapping[int, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_names(
        cls,
        model: Any,
        backdrop: Iterable[str] = (),
        surface: Iterable[str] = (),
        mask_groups: Mapping[str, tuple[Iterable[str], Iterable[str]]] | None = None,
        workspace: Workspace | None = None,
        self_parts: Iterable[str] | None = None,
        self_materials: Iterable[str] = (),
        texture_recipes: Mapping[str, Mapping[str, str]] | None = None,
    ) -> "SceneLayout":
        """Build a layout from names in `model`.

        `backdrop`, `surface` and `self_parts` name geoms or bodies (all geoms of a body);
        `self_parts` None means every body geom. `mask_groups` maps a group name to ``(geom or
        body names, site names)``; groups whose parts are all absent from the model are left out
        (e.g. "object" in a reach task). Body geoms are all visible geoms (alpha >= 0.5) not in
        the backdrop or the surface. `self_materials` and the keys of `texture_recipes` are
        material and texture names.
        """
        backdrop_ids = _geoms_named(model, backdrop)
        surface_ids = _geoms_named(model, surface)
        taken = set(backdrop_ids) | set(surface_ids)
        bodies = tuple(
            int(i) for i in range(model.ngeom) if i not in taken and model.geom_rgba[i, 3] >= VISIBLE_ALPHA
        )
        groups = {}
        for name, (geom_names, site_names) in (mask_groups or {}).items():
            group = MaskGroup(_geoms_named(model, geom_names, strict=False), _site_ids(model, site_names))
            if group.geoms or group.sites:
                groups[name] = group
        own = bodies if self_parts is None else tuple(g for g in _geoms_named(model, self_parts) if g in bodies)
        materials = tuple(int(model.material(n).id) for n in self_materials)
        recipes = {int(model.texture(n).id): dict(r) for n, r in (texture_recipes or {}).items()}
        return cls(backdrop_ids, surface_ids, bodies, workspace, groups, own, materials, recipes)


# Geoms more transparent than this are helper markers (e.g. Fetch's mocap crosshair): they are
# left out of segmentation, so masks and composited backgrounds see what lies behind them.
VISIBLE_ALPHA = 0.5


def _geoms_named(model: Any, names: Iterable[str], strict: bool = True) -> tuple[int, ...]:
    """Ids of the geoms called `names`, or of all geoms of bodies called so (geom names first)."""
    import mujoco

    ids: list[int] = []
    for name in names:
        geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if geom >= 0:
            ids.append(geom)
        elif body >= 0:
            ids += np.flatnonzero(model.geom_bodyid == body).tolist()
        elif strict:
            raise KeyError(f"no geom or body {name!r} in the model")
    return tuple(int(i) for i in ids)


def _site_ids(model: Any, names: Iterable[str]) -> tuple[int, ...]:
    import mujoco

    ids = (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, n) for n in names)
    return tuple(int(i) for i in ids if i >= 0)


@dataclass(frozen=True)
class KeepOut:
    """Regions distractors must avoid at reset: capsules around segments (world metres).

    ``segments`` is float ``[K, 2, 3]`` (a point is a segment with equal ends), ``radius`` ``[K]``.
    Distances are measured in the horizontal plane, so a path above the table also keeps
    distractors out from under it.
    """

    segments: np.ndarray
    radius: np.ndarray


@dataclass
class NoOptions:
    """The ``none`` shift takes no options."""


class Shift:
    """A test-time change of appearance; this base class is the identity (the ``none`` shift)."""

    needs_labels: ClassVar[bool] = False  # postprocess needs the segmentation label map

    def __init__(self, name: str, options: Any, model: Any, layout: SceneLayout, resolution: int):
        self.name = name
        self.options = options
        self.model = model
        self.layout = layout
        self.resolution = resolution
        self.seed = 0

    def episode_rng(self, *keys: int) -> np.random.Generator:
        """A generator that depends only on the episode seed, the shift name and `keys`."""
        return np.random.default_rng([self.seed, zlib.crc32(self.name.encode()), *keys])

    def on_reset(self, seed: int, keep_out: KeepOut) -> tuple[int, ...]:
        """Start an episode; returns the ids of textures it changed (the renderer uploads them)."""
        self.seed = int(seed)
        return ()

    def decorate_scene(self, scene: Any, t: int) -> None:
        """Edit the ``mjvScene`` after ``mjv_updateScene`` at step `t` (visual-only changes)."""

    def postprocess(self, rgb: np.ndarray, labels: np.ndarray | None, t: int) -> np.ndarray:
        """Edit the frame, uint8 ``[H, W, 3]``; `labels` is int8 ``[H, W]`` (`Label`) if `needs_labels`."""
        return rgb

    def describe(self) -> dict[str, Any]:
        """Name and options, for dataset manifests and run records."""
        return {"name": self.name, "options": dataclasses.asdict(self.options)}


@dataclass(frozen=True)
class ShiftSpec:
    """A registered shift: a class, its typed options and the defaults that define the name."""

    name: str
    description: str
    cls: type[Shift]
    options_cls: type
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def options(self, overrides: Mapping[str, Any] | None = None) -> Any:
        """The typed options: this shift's defaults updated with `overrides` (validated)."""
        data = {**self.defaults, **dict(overrides or {})}
        return from_dict(self.options_cls, data, source=f"shift {self.name!r} options")


SHIFTS: Registry[ShiftSpec] = Registry("shift")
register_shift = SHIFTS.register
list_shifts = SHIFTS.names  # registration order: ``none`` first
get_shift_spec = SHIFTS.get


def validate_shift(name: str, options: Mapping[str, Any] | None) -> None:
    """Raise `ConfigError` / `UnknownNameError` if `name` or its `options` are invalid."""
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"shift_options must be a mapping of option names to values, got {options!r}")
    get_shift_spec(name).options(options)


def make_shift(name: str, options: Mapping[str, Any] | None, model: Any, layout: SceneLayout, resolution: int) -> Shift:
    """Create shift `name` for a task's `model` and `layout`, rendering at `resolution` pixels."""
    spec = get_shift_spec(name)
    return spec.cls(name, spec.options(options), model, layout, resolution)


register_shift(ShiftSpec("none", "the clean task (training conditions)", Shift, NoOptions))
