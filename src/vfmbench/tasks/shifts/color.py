"""``color_easy`` / ``color_hard``: random colours of the background, the surface and the bodies.

In the manner of DMC-GB's colour settings. Every colour ``c`` of a part is moved toward a
uniformly random colour ``r``: ``(1 - s) c + s r`` with a strength ``s`` per part (0 keeps the
original, 1 is a fully random colour). Parts:

- background: skybox textures (their gradient is redrawn between two random colours) and the
  backdrop geoms with their textures;
- surface: the floor/table geoms and their textures;
- bodies: robot and object geoms; geoms that share a colour get the same new colour, so a
  robot keeps its two-tone look.

Colours are drawn once per episode from the episode seed and always derived from the model's
original values, so repeated resets never drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfmbench.tasks.shifts.base import KeepOut, Shift, ShiftSpec, register_shift
from vfmbench.utils.errors import ConfigError

_DEFAULT_RGBA = np.array([0.5, 0.5, 0.5, 1.0], np.float32)  # MuJoCo's geom rgba meaning "use the material"


@dataclass
class ColorOptions:
    """Strengths in [0, 1] of the colour change per part (0: original, 1: fully random)."""

    background: float = 0.3
    surface: float = 0.2
    bodies: float = 0.2

    def validate(self) -> None:
        for key in ("background", "surface", "bodies"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"colour shift option {key!r} must be between 0 and 1, got {value}")


class ColorShift(Shift):
    """Recolours the model once per episode (see the module docstring)."""

    options: ColorOptions

    def __init__(self, name: str, options: ColorOptions, model: Any, layout: Any, resolution: int):
        import mujoco

        super().__init__(name, options, model, layout, resolution)
        self._rgba0 = model.geom_rgba.copy()
        use_material = (model.geom_matid >= 0) & np.all(model.geom_rgba == _DEFAULT_RGBA, axis=1)
        self._effective = np.where(
            use_material[:, None], model.mat_rgba[np.maximum(model.geom_matid, 0)], model.geom_rgba
        )
        sky = np.flatnonzero(model.tex_type == mujoco.mjtTexture.mjTEXTURE_SKYBOX).tolist()
        background = sky + self._textures_of(layout.backdrop_geoms)
        surface = [t for t in self._textures_of(layout.surface_geoms) if t not in background]
        self._parts = (
            (layout.backdrop_geoms, background, "background"),
            (layout.surface_geoms, surface, "surface"),
            (layout.body_geoms, [], "bodies"),
        )
        self._tex0 = {t: self._texture(t).copy() for t in background + surface}

    def _textures_of(self, geoms: Sequence[int]) -> list[int]:
        mats = {int(self.model.geom_matid[g]) for g in geoms} - {-1}
        tex = {int(t) for m in mats for t in np.atleast_1d(self.model.mat_texid[m]) if t >= 0}
        return sorted(tex)

    def _texture(self, texid: int) -> np.ndarray:
        """A writable view of texture `texid`: uint8 [texels, channels]."""
        m = self.model
        n = int(m.tex_width[texid] * m.tex_height[texid] * m.tex_nchannel[texid])
        start = int(m.tex_adr[texid])
        return m.tex_data[start : start + n].reshape(-1, int(m.tex_nchannel[texid]))

    def on_reset(self, seed: int, keep_out: KeepOut) -> tuple[int, ...]:
        super().on_reset(seed, keep_out)
        rng = self.episode_rng()
        self.model.geom_rgba[:] = self._rgba0
        for geoms, textures, key in self._parts:
            strength = float(getattr(self.options, key))
            self._recolour_geoms(list(geoms), strength, rng)
            for texid in textures:
                self._recolour_texture(texid, strength, rng)
        return tuple(self._tex0)

    def _recolour_geoms(self, geoms: list[int], strength: float, rng: np.random.Generator) -> None:
        if not geoms:
            return
        colours, which = np.unique(self._effective[geoms, :3].round(4), axis=0, return_inverse=True)
        targets = rng.uniform(0.0, 1.0, size=colours.shape)
        new = (1 - strength) * colours + strength * targets
        self.model.geom_rgba[geoms, :3] = new[which.reshape(-1)]
        self.model.geom_rgba[geoms, 3] = self._effective[geoms, 3]

    def _recolour_texture(self, texid: int, strength: float, rng: np.random.Generator) -> None:
        """Redraw the texture's light-dark pattern between two random colours, mixed in by `strength`."""
        original = self._tex0[texid].astype(np.float32)
        rgb = original[:, :3] / 255.0
        lum = rgb.mean(axis=1)
        span = lum.max() - lum.min()
        p = (lum - lum.min()) / span if span > 1e-6 else np.zeros_like(lum)
        a, b = rng.uniform(0.0, 1.0, size=(2, 3))
        target = a + p[:, None] * (b - a)
        out = original.copy()
        out[:, :3] = 255.0 * ((1 - strength) * rgb + strength * target)
        self._texture(texid)[:] = np.clip(out.round(), 0, 255).astype(np.uint8)


register_shift(
    ShiftSpec(
        "color_easy",
        "randomised colours of background, floor/table and bodies, small range (DMC-GB color_easy)",
        ColorShift,
        ColorOptions,
        {"background": 0.3, "surface": 0.2, "bodies": 0.2},
    )
)
register_shift(
    ShiftSpec(
        "color_hard",
        "randomised colours of background, floor/table and bodies, wide range (DMC-GB color_hard)",
        ColorShift,
        ColorOptions,
        {"background": 1.0, "surface": 0.8, "bodies": 0.7},
    )
)
