"""`ShiftedRenderer`: one camera on a MuJoCo scene, a shift applied, ground-truth masks.

Every MuJoCo task renders through this class, so every shift and mask works for it once it
declares a `SceneLayout`. One ``mjv_updateScene`` feeds an RGB pass and, when needed, a
segmentation pass (MuJoCo's ``mjRND_SEGMENT``), which costs about as much as the RGB pass.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any

import numpy as np

from vfmbench.tasks.shifts.base import VISIBLE_ALPHA, KeepOut, SceneLayout, Shift
from vfmbench.utils.errors import ConfigError


class Label(IntEnum):
    """What a pixel shows, from segmentation."""

    SKY = 0  # nothing: the skybox
    BACKDROP = 1  # `SceneLayout.backdrop_geoms`
    SURFACE = 2  # `SceneLayout.surface_geoms`
    SCENE = 3  # any other model geom or site (robot, object, goal marker)
    DISTRACTOR = 4  # geoms a shift added to the scene


_LIVE: "weakref.WeakSet[ShiftedRenderer]" = weakref.WeakSet()


def _close_live_renderers() -> None:
    """Free every renderer's GL context before EGL is torn down at exit (otherwise it prints errors)."""
    for renderer in list(_LIVE):
        renderer.close()


class ShiftedRenderer:
    """Renders ``[H, W, 3]`` frames of `model` from `camera` with `shift` applied.

    `decorate` adds the task's own visual-only geoms to the scene before the shift's. Added
    geoms count as distractors in labels and masks unless tagged with the model object they
    belong to (``objtype``/``objid``, e.g. a goal pole tagged as the goal site).
    """

    def __init__(
        self,
        model: Any,
        resolution: int,
        camera: Any,
        layout: SceneLayout,
        shift: Shift,
        decorate: Callable[[Any], None] | None = None,
    ):
        import mujoco

        self._mj = mujoco
        self.model = model
        self.layout = layout
        self.shift = shift
        self.camera = camera
        self.resolution = resolution
        self._decorate = decorate
        # plain ints: comparing arrays with MuJoCo's enum objects falls back to slow Python loops
        self._geom, self._site = int(mujoco.mjtObj.mjOBJ_GEOM), int(mujoco.mjtObj.mjOBJ_SITE)
        self._unknown, self._none = int(mujoco.mjtObj.mjOBJ_UNKNOWN), int(mujoco.mjtGeom.mjGEOM_NONE)
        # an offscreen buffer of the frame's own size (the models ask for 480x480 or more): the same
        # pixels, and on software GL (Mesa) a fifth less time a frame at 84x84
        model.vis.global_.offwidth = model.vis.global_.offheight = resolution
        self._renderer = mujoco.Renderer(model, resolution, resolution)
        self._closed = False
        # (Re-)registered at every new renderer, so it runs before the EGL teardown handlers of
        # anything imported since (mujoco's, dm_control's), whichever task family came first.
        atexit.unregister(_close_live_renderers)
        atexit.register(_close_live_renderers)
        _LIVE.add(self)
        self._geom_label = np.full(model.ngeom, Label.SCENE, np.int8)
        self._geom_label[list(layout.backdrop_geoms)] = Label.BACKDROP
        self._geom_label[list(layout.surface_geoms)] = Label.SURFACE
        self._group_luts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, group in layout.mask_groups.items():
            geoms = np.zeros(model.ngeom + 1, bool)  # index -1 (not a geom) stays False
            sites = np.zeros(model.nsite + 1, bool)
            geoms[list(group.geoms)] = True
            sites[list(group.sites)] = True
            self._group_luts[name] = (geoms, sites)

    @property
    def mask_groups(self) -> list[str]:
        """Names accepted by `mask`."""
        return list(self._group_luts)

    def reset(self, seed: int, keep_out: KeepOut) -> None:
        """Start an episode: the shift re-randomises from `seed`, avoiding `keep_out`."""
        changed = self.shift.on_reset(seed, keep_out)
        if changed:
            # mujoco.Renderer keeps its GL and MuJoCo contexts here; uploads go to the current one
            if self._renderer._gl_context is not None:
                self._renderer._gl_context.make_current()
            for texid in changed:
                self._mj.mjr_uploadTexture(self.model, self._renderer._mjr_context, texid)

    def render(self, data: Any, t: int = 0) -> np.ndarray:
        """The shifted frame of `data` at episode step `t`: uint8 ``[H, W, 3]``."""
        self._update(data, t)
        rgb = self._renderer.render()
        labels = self._labels(self._segment()) if self.shift.needs_labels else None
        return self.shift.postprocess(rgb, labels, t)

    def render_with_mask(self, data: Any, groups: Sequence[str], t: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """`render` and `mask` from one scene update and one segmentation pass."""
        self._check_groups(groups)
        self._update(data, t)
        rgb = self._renderer.render()
        seg = self._segment()
        labels = self._labels(seg) if self.shift.needs_labels else None
        return self.shift.postprocess(rgb, labels, t), self._mask(seg, groups)

    def labels(self, data: Any, t: int = 0) -> np.ndarray:
        """What each pixel of the frame shows: int8 ``[H, W]`` of `Label` values."""
        self._update(data, t)
        return self._labels(self._segment())

    def mask(self, data: Any, groups: Sequence[str], t: int = 0) -> np.ndarray:
        """Ground-truth mask of the parts in `groups`, aligned with `render`: bool ``[H, W]``.

        Distractors and other geoms in front of a part hide it, as they do in the RGB frame.
        """
        self._check_groups(groups)
        self._update(data, t)
        return self._mask(self._segment(), groups)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._renderer.close()

    # -- internals ------------------------------------------------------------------------
    def _check_groups(self, groups: Sequence[str]) -> None:
        unknown = [g for g in groups if g not in self._group_luts]
        if unknown:
            raise ConfigError(
                f"mask_groups: {unknown[0]!r} is not a mask group of this task; valid groups: "
                f"{', '.join(self._group_luts)}"
            )

    def _mask(self, seg: np.ndarray, groups: Sequence[str]) -> np.ndarray:
        objid, objtype = seg[..., 0], seg[..., 1]
        is_geom = objtype == self._geom
        is_site = objtype == self._site
        geom_id = np.where(is_geom, objid, -1)  # -1 picks each table's trailing False
        site_id = np.where(is_site, objid, -1)
        out = np.zeros(objid.shape, bool)
        for name in groups:
            geoms, sites = self._group_luts[name]
            out |= geoms[geom_id] | sites[site_id]
        return out

    def _update(self, data: Any, t: int) -> None:
        self._renderer.update_scene(data, camera=self.camera)
        scene = self._renderer.scene
        first = scene.ngeom
        if self._decorate is not None:
            self._decorate(scene)
        self.shift.decorate_scene(scene, t)
        for i in range(first, scene.ngeom):  # added geoms need their own segmentation ids
            scene.geoms[i].segid = i

    def _segment(self) -> np.ndarray:
        """(objid, objtype) per pixel, int32 ``[H, W, 2]``, of the current scene without helper geoms."""
        scene = self._renderer.scene
        for i in range(scene.ngeom):
            if scene.geoms[i].rgba[3] < VISIBLE_ALPHA:
                scene.geoms[i].type = self._none
        self._renderer.enable_segmentation_rendering()
        try:
            return self._renderer.render()
        finally:
            self._renderer.disable_segmentation_rendering()

    def _labels(self, seg: np.ndarray) -> np.ndarray:
        objid, objtype = seg[..., 0], seg[..., 1]
        labels = np.full(objid.shape, Label.SCENE, np.int8)
        labels[objtype == -1] = Label.SKY
        labels[objtype == self._unknown] = Label.DISTRACTOR
        is_geom = objtype == self._geom
        labels[is_geom] = self._geom_label[objid[is_geom]]
        return labels
