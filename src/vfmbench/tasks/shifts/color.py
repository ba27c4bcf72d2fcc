"""``color_easy`` / ``color_hard``: DMC-GB's colour settings, on any MuJoCo task.

Every episode gets one *colour entry* in DMC-GB's format (`ColorEntry`): ``skybox_rgb``,
``grid_rgb1``, ``grid_rgb2`` and ``self_rgb``, RGB in [0, 1]. Entries come from

- a colour file (option ``colors``): DMC-GB's own ``color_easy.pt`` / ``color_hard.pt`` (legacy
  torch pickles of 100 dicts, read with `load_color_file` without arbitrary unpickling) or a JSON
  list of the same dicts; one entry is drawn per episode from the episode seed (option
  ``entry`` fixes one);
- or, without a file, the built-in generator: each channel of the task's original colours plus
  Gaussian noise of standard deviation ``std`` (0.1 easy, 0.2 hard), clipped to [0, 1], and
  ``grid_rgb2 = grid_rgb1 + (original grid_rgb2 - original grid_rgb1)``. These ranges were
  measured on DMC-GB's two files (docs/shifts.md): per-channel offsets from DMControl's defaults
  are independent, normal (Shapiro-Wilk p = 0.95 easy, 0.15 hard) with standard deviation 0.099
  (easy) and 0.18 after clipping (hard, 0.2 before); ``grid_rgb2 - grid_rgb1`` is exactly 0.1.

An entry is applied as DMC-GB applies it, through the task's `SceneLayout`:

- ``skybox_rgb``: the skybox texture's first colour (a builtin texture with a recipe is rebuilt
  by MuJoCo exactly as DMC-GB's edited XML would build it; otherwise its light-dark pattern is
  redrawn from its dark end to ``skybox_rgb``); backdrop geoms move by the sky's change;
- ``grid_rgb1`` / ``grid_rgb2``: the surface texture's two checker colours (rebuilt from its
  recipe, or its pattern redrawn between the two); surface geoms without a texture move by
  ``grid_rgb1``'s change;
- ``self_rgb``: the layout's self materials take it exactly (DMControl's ``self`` material); the
  layout's self geoms move by one offset so that their mean colour becomes ``self_rgb`` (a
  two-tone robot keeps its contrast).

Colours are always derived from the model's original values, so repeated resets never drift.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from vfmbench.tasks.shifts.base import KeepOut, Shift, ShiftSpec, register_shift
from vfmbench.utils.errors import ConfigError

_DEFAULT_RGBA = np.array([0.5, 0.5, 0.5, 1.0], np.float32)  # MuJoCo's geom rgba meaning "use the material"


@dataclass(frozen=True)
class ColorEntry:
    """One DMC-GB colour setting: RGB triples in [0, 1] (float64 ``[3]``)."""

    skybox_rgb: np.ndarray
    grid_rgb1: np.ndarray
    grid_rgb2: np.ndarray
    self_rgb: np.ndarray

    def as_dict(self) -> dict[str, list[float]]:
        return {f.name: [float(v) for v in getattr(self, f.name)] for f in fields(self)}


_KEYS = tuple(f.name for f in fields(ColorEntry))


def _entry(data: Any, where: str) -> ColorEntry:
    """A validated `ColorEntry` from a mapping of DMC-GB's four keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} is a {type(data).__name__}, not a dict of {', '.join(_KEYS)}")
    missing = [k for k in _KEYS if k not in data]
    unknown = [k for k in data if k not in _KEYS]
    if missing or unknown:
        raise ConfigError(f"{where}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(map(str, unknown))}"] if unknown else []))
            + f" (an entry has exactly {', '.join(_KEYS)})")
    values = {}
    for k in _KEYS:
        try:
            v = np.asarray(data[k], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} {k}: {data[k]!r} is not three numbers") from None
        if v.shape != (3,) or not np.isfinite(v).all() or (v < 0).any() or (v > 1).any():
            raise ConfigError(f"{where} {k}: {v.tolist()} is not three numbers in [0, 1]")
        values[k] = v
    return ColorEntry(**values)


def load_color_file(path: str | Path) -> list[ColorEntry]:
    """The entries of a colour file: DMC-GB's ``color_easy.pt`` / ``color_hard.pt`` or a JSON list.

    DMC-GB's files are legacy (non-zip) torch pickles of a list of dicts of float64 numpy arrays.
    They are read with ``torch.load(weights_only=True)``, which builds only tensors, containers
    and the numpy array-reconstruction globals allow-listed here: nothing in the file is run.
    Raises `ConfigError` naming the file (and the entry) when it is missing, unreadable, or not
    a non-empty list of entries with RGB values in [0, 1].
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"colour file {p} does not exist; give DMC-GB's color_easy.pt / color_hard.pt "
                          "or a JSON list of {skybox_rgb, grid_rgb1, grid_rgb2, self_rgb}")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"colour file {p} is not readable JSON: {exc}") from None
    else:
        data = _load_torch_pickle(p)
    if not isinstance(data, list) or not data:
        raise ConfigError(f"colour file {p} holds a {type(data).__name__}, not a non-empty list of colour entries")
    return [_entry(d, f"colour file {p} entry {i}") for i, d in enumerate(data)]


def _load_torch_pickle(p: Path) -> Any:
    import pickle

    import torch
    import torch.serialization as ts

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct

    numpy_globals = [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        (np.ndarray, "numpy.ndarray"),
        (np.dtype, "numpy.dtype"),
        *(cls for cls in vars(np.dtypes).values() if isinstance(cls, type) and issubclass(cls, np.dtype)),
    ]
    try:
        with ts.safe_globals(numpy_globals):
            return torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"colour file {p} is damaged or not a colour file (only numpy arrays, lists and dicts "
                          f"are read from it, nothing is executed): {first}") from None


@lru_cache(maxsize=8)
def _colour_file(path: str) -> tuple[ColorEntry, ...]:
    return tuple(load_color_file(path))


@dataclass
class ColorOptions:
    """Options of the colour shifts (see the module docstring)."""

    colors: str | None = None  # DMC-GB colour file (.pt) or JSON list; None: the built-in generator
    std: float = 0.1  # built-in generator: per-channel standard deviation around the original colours
    entry: int | None = None  # colour file: use this entry every episode (None: one per episode from the seed)

    @staticmethod
    def resolve_paths(options: dict[str, Any]) -> dict[str, Any]:
        """`options` with `colors` made absolute, so a recorded config finds its file from any folder."""
        if isinstance(options.get("colors"), str):
            options = {**options, "colors": str(Path(options["colors"]).expanduser().absolute())}
        return options

    def validate(self) -> None:
        if not 0.0 <= self.std <= 1.0:
            raise ConfigError(f"colour shift option 'std' must be between 0 and 1, got {self.std}")
        if self.colors is None:
            if self.entry is not None:
                raise ConfigError("colour shift option 'entry' picks an entry of a colour file: set 'colors' too")
            return
        entries = _colour_file(str(Path(self.colors).expanduser().absolute()))
        if self.entry is not None and not 0 <= self.entry < len(entries):
            raise ConfigError(f"colour shift option 'entry' must be between 0 and {len(entries) - 1} "
                              f"for {self.colors}, got {self.entry}")


def builtin_texture(recipe: Mapping[str, str]) -> np.ndarray:
    """The texels MuJoCo builds for a builtin texture with XML attributes `recipe`: uint8 ``[N]``.

    `recipe` holds the ``<texture>`` attributes (``type``, ``builtin``, ``rgb1``, ``rgb2``, ``mark``,
    ``markrgb``, ``width``, ``height``, ...) as strings; compiling them alone gives exactly the data
    the full model would hold.
    """
    return _builtin_texture(tuple(sorted(recipe.items())))


@lru_cache(maxsize=4)
def _builtin_texture(items: tuple[tuple[str, str], ...]) -> np.ndarray:
    import mujoco

    attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in items if k != "name")
    model = mujoco.MjModel.from_xml_string(f'<mujoco><asset><texture name="t" {attrs}/></asset></mujoco>')
    data = model.tex_data.copy()
    data.setflags(write=False)
    return data


def _rgb_text(rgb: np.ndarray) -> str:
    """RGB as DMC-GB writes it into the XML (Python's repr of each float)."""
    return " ".join(str(float(v)) for v in rgb)


class ColorShift(Shift):
    """Applies one DMC-GB colour entry per episode (see the module docstring)."""

    options: ColorOptions

    def __init__(self, name: str, options: ColorOptions, model: Any, layout: Any, resolution: int):
        import mujoco

        super().__init__(name, options, model, layout, resolution)
        self._rgba0 = model.geom_rgba.copy()
        self._mat_rgba0 = model.mat_rgba.copy()
        use_material = (model.geom_matid >= 0) & np.all(model.geom_rgba == _DEFAULT_RGBA, axis=1)
        self._effective = np.where(
            use_material[:, None], model.mat_rgba[np.maximum(model.geom_matid, 0)], model.geom_rgba
        )
        self._sky = np.flatnonzero(model.tex_type == mujoco.mjtTexture.mjTEXTURE_SKYBOX).tolist()
        self._surface_tex = [t for t in self._textures_of(layout.surface_geoms) if t not in self._sky]
        self._tex0 = {t: self._texture(t).copy() for t in self._sky + self._surface_tex}
        textured = {g for g in layout.surface_geoms if self._textures_of([g])}
        self._plain_surface = [g for g in layout.surface_geoms if g not in textured]
        self._entries = None if options.colors is None else _colour_file(str(Path(options.colors).expanduser().absolute()))
        self.original = self._original_entry()
        self.current: ColorEntry | None = None

    # -- model access ----------------------------------------------------------------------
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

    def _original_entry(self) -> ColorEntry:
        """The task's own colours in entry form: the centre of the built-in generator."""
        recipes = self.layout.texture_recipes

        def recipe_rgb(tex: list[int], key: str) -> np.ndarray | None:
            for t in tex:
                if t in recipes and key in recipes[t]:
                    return np.array([float(v) for v in recipes[t][key].split()], np.float64)
            return None

        def texel_ends(tex: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
            if not tex:
                return None
            rgb = self._tex0[tex[0]][:, :3].astype(np.float64) / 255.0
            lum = rgb.mean(axis=1)
            return rgb[lum.argmin()], rgb[lum.argmax()]

        def geom_mean(geoms: Sequence[int]) -> np.ndarray | None:
            return self._effective[list(geoms), :3].astype(np.float64).mean(axis=0) if len(geoms) else None

        grey = np.full(3, 0.5)
        sky = recipe_rgb(self._sky, "rgb1")
        if sky is None:
            ends = texel_ends(self._sky)
            sky = ends[1] if ends else geom_mean(self.layout.backdrop_geoms)
        grid1, grid2 = recipe_rgb(self._surface_tex, "rgb1"), recipe_rgb(self._surface_tex, "rgb2")
        if grid1 is None or grid2 is None:
            ends = texel_ends(self._surface_tex)
            grid1, grid2 = ends if ends else (geom_mean(self._plain_surface),) * 2
        if self.layout.self_materials:
            own = self._mat_rgba0[list(self.layout.self_materials), :3].astype(np.float64).mean(axis=0)
        else:
            own = geom_mean(self.layout.self_geoms)
        pick = lambda v: grey.copy() if v is None else np.clip(v, 0, 1)  # noqa: E731
        return ColorEntry(pick(sky), pick(grid1), pick(grid2), pick(own))

    # -- episodes ----------------------------------------------------------------------------
    def draw(self, rng: np.random.Generator) -> ColorEntry:
        """This episode's entry: from the colour file, or from the built-in generator."""
        if self._entries is not None:
            i = self.options.entry if self.options.entry is not None else int(rng.integers(len(self._entries)))
            return self._entries[i]
        o, std = self.original, self.options.std
        jitter = lambda c: np.clip(c + rng.normal(0.0, std, 3), 0.0, 1.0)  # noqa: E731
        sky, grid1, own = jitter(o.skybox_rgb), jitter(o.grid_rgb1), jitter(o.self_rgb)
        return ColorEntry(sky, grid1, np.clip(grid1 + (o.grid_rgb2 - o.grid_rgb1), 0.0, 1.0), own)

    def on_reset(self, seed: int, keep_out: KeepOut) -> tuple[int, ...]:
        super().on_reset(seed, keep_out)
        self.current = entry = self.draw(self.episode_rng())
        m, layout = self.model, self.layout
        m.geom_rgba[:] = self._rgba0
        m.mat_rgba[:] = self._mat_rgba0
        for t in self._sky:
            self._set_texture(t, {"rgb1": entry.skybox_rgb}, entry.skybox_rgb, None)
        o = self.original
        self._shift_geoms(list(layout.backdrop_geoms), entry.skybox_rgb - o.skybox_rgb)
        for t in self._surface_tex:
            self._set_texture(t, {"rgb1": entry.grid_rgb1, "rgb2": entry.grid_rgb2}, entry.grid_rgb2, entry.grid_rgb1)
        self._shift_geoms(self._plain_surface, entry.grid_rgb1 - o.grid_rgb1)
        if layout.self_materials:
            m.mat_rgba[list(layout.self_materials), :3] = entry.self_rgb
        self._shift_geoms(list(layout.self_geoms), entry.self_rgb - o.self_rgb)
        return tuple(self._tex0)

    def _set_texture(self, texid: int, colours: dict[str, np.ndarray], bright: np.ndarray, dark: np.ndarray | None) -> None:
        """Rebuild a recipe texture with `colours`, or redraw its light-dark pattern from `dark`
        (None: its own darkest texel) to `bright`."""
        recipe = self.layout.texture_recipes.get(texid)
        if recipe is not None:
            self._texture(texid).reshape(-1)[:] = builtin_texture({**recipe, **{k: _rgb_text(v) for k, v in colours.items()}})
            return
        original = self._tex0[texid].astype(np.float64)
        rgb = original[:, :3] / 255.0
        lum = rgb.mean(axis=1)
        span = lum.max() - lum.min()
        p = (lum - lum.min()) / span if span > 1e-6 else np.ones_like(lum)
        low = rgb[lum.argmin()] if dark is None else dark
        out = original.copy()
        out[:, :3] = 255.0 * (low + p[:, None] * (bright - low))
        self._texture(texid)[:] = np.clip(out.round(), 0, 255).astype(np.uint8)

    def _shift_geoms(self, geoms: list[int], offset: np.ndarray) -> None:
        """Move the geoms' original colours by `offset` (the entry's colour minus the original one)."""
        if not geoms:
            return
        colours = self._effective[geoms, :3].astype(np.float64)
        self.model.geom_rgba[geoms, :3] = np.clip(colours + offset, 0.0, 1.0)
        self.model.geom_rgba[geoms, 3] = self._effective[geoms, 3]

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["original"] = self.original.as_dict()
        return out


register_shift(
    ShiftSpec(
        "color_easy",
        "DMC-GB color_easy: skybox, floor/table and agent colours near the originals (std 0.1), or "
        "entries of DMC-GB's color_easy.pt (option colors)",
        ColorShift,
        ColorOptions,
        {"std": 0.1},
    )
)
register_shift(
    ShiftSpec(
        "color_hard",
        "DMC-GB color_hard: skybox, floor/table and agent colours far from the originals (std 0.2), or "
        "entries of DMC-GB's color_hard.pt (option colors)",
        ColorShift,
        ColorOptions,
        {"std": 0.2},
    )
)
