"""``video_easy`` / ``video_hard``: a moving video behind the scene, in the manner of DMC-GB.

Pixels whose segmentation says sky or backdrop (``video_hard``: also the floor/table surface)
show a video frame instead. The video is a user file (``sources``) or, by default, a procedural
moving texture. ``video_hard`` moves faster, is more intricate and cuts to another clip every
``cut_every`` steps. Both swing the scene's lights around (DMC-GB's moving light).

Which clip, where it starts and the light's phase are drawn from the episode seed; frame
``t`` of an episode is a function of the seed and ``t`` only, so frames are reproducible.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfmbench.tasks.shifts.base import KeepOut, Shift, ShiftSpec, register_shift
from vfmbench.tasks.shifts.render import Label
from vfmbench.tasks.shifts.videos import ProceduralVideo, check_source, expand_sources, load_video
from vfmbench.utils.errors import ConfigError

_LIGHT_KEY = 2**31  # stream of the light's phase, apart from the clip streams 0, 1, 2, ...


@dataclass
class VideoOptions:
    """Options of the video shifts."""

    sources: tuple[str, ...] = ()  # video files, GIFs, frame folders, folders of clips; empty: procedural
    surfaces: bool = False  # also replace the floor/table (video_hard)
    speed: float = 1.0  # video frames (procedural: time units) per environment step
    cut_every: int = 0  # steps between cuts to another clip (0: one clip per episode)
    complexity: int = 2  # procedural texture: waves and blobs (more is busier)
    light_motion: float = 0.0  # tilt of the lights (radians) as they circle; 0 keeps them still
    max_frames: int = 1000  # frames read from each source
    fit: str = "crop"  # "crop": centre-crop frames square; "stretch": resize whole frames (DMC-GB)
    random_start: bool = True  # start each clip at a random frame (False: at its first frame, as DMC-GB)

    @staticmethod
    def resolve_paths(options: dict[str, Any]) -> dict[str, Any]:
        """`options` with `sources` made absolute (against the current folder), as datasets record
        them, so a recorded config finds its videos from any working folder."""
        if isinstance(options.get("sources"), (list, tuple)):
            options = {**options, "sources": [os.path.abspath(os.path.expanduser(str(s))) for s in options["sources"]]}
        return options

    def validate(self) -> None:
        where = "video shift option"
        for i, src in enumerate(self.sources):
            check_source(src, f"{where} sources[{i}]")
        if self.speed <= 0:
            raise ConfigError(f"{where} 'speed' must be positive, got {self.speed}")
        if self.cut_every < 0:
            raise ConfigError(f"{where} 'cut_every' must be >= 0, got {self.cut_every}")
        if not 1 <= self.complexity <= 16:
            raise ConfigError(f"{where} 'complexity' must be between 1 and 16, got {self.complexity}")
        if not 0 <= self.light_motion <= np.pi / 2:
            raise ConfigError(f"{where} 'light_motion' must be between 0 and pi/2, got {self.light_motion}")
        if self.max_frames < 1:
            raise ConfigError(f"{where} 'max_frames' must be positive, got {self.max_frames}")
        if self.fit not in ("crop", "stretch"):
            raise ConfigError(f"{where} 'fit' must be 'crop' or 'stretch', got {self.fit!r}")


class VideoShift(Shift):
    """Composites a video where the scene shows sky and backdrop (and surfaces if asked)."""

    needs_labels = True
    options: VideoOptions

    def __init__(self, name: str, options: VideoOptions, model: Any, layout: Any, resolution: int):
        super().__init__(name, options, model, layout, resolution)
        self._procedural: dict[int, ProceduralVideo] = {}
        self._replace_max = Label.SURFACE if options.surfaces else Label.BACKDROP
        self._light_phase = 0.0
        self._light_centre = np.asarray(model.stat.center, np.float64)
        self._clips = expand_sources(options.sources)

    def on_reset(self, seed: int, keep_out: KeepOut) -> tuple[int, ...]:
        super().on_reset(seed, keep_out)
        self._procedural.clear()
        self._light_phase = float(self.episode_rng(_LIGHT_KEY).uniform(0, 2 * np.pi))
        return ()

    def frame(self, t: int) -> np.ndarray:
        """The background at episode step `t`: uint8 ``[R, R, 3]``."""
        o = self.options
        clip = t // o.cut_every if o.cut_every else 0
        local = t - clip * o.cut_every if o.cut_every else t
        rng = self.episode_rng(clip)
        if self._clips:
            source = self._clips[int(rng.integers(len(self._clips)))]
            frames = load_video(source, self.resolution, o.max_frames, o.fit)
            start = int(rng.integers(len(frames))) if o.random_start else 0
            return frames[(start + int(local * o.speed)) % len(frames)]
        if clip not in self._procedural:
            self._procedural[clip] = ProceduralVideo(rng, o.complexity, self.resolution)
        return self._procedural[clip].frame(local * o.speed)

    def postprocess(self, rgb: np.ndarray, labels: np.ndarray | None, t: int) -> np.ndarray:
        assert labels is not None
        replace = labels <= self._replace_max
        out = rgb.copy()
        out[replace] = self.frame(t)[replace]
        return out

    def decorate_scene(self, scene: Any, t: int) -> None:
        """Swing every model light (not the headlight) on a cone of half-angle `light_motion`."""
        if self.options.light_motion == 0:
            return
        azimuth = self._light_phase + 0.1 * self.options.speed * t
        axis = np.array([-np.sin(azimuth), np.cos(azimuth), 0.0])
        rot = _rotation(axis, self.options.light_motion)
        first = 1 if self.model.vis.headlight.active else 0
        for i in range(first, scene.nlight):
            light = scene.lights[i]
            light.dir[:] = rot @ np.asarray(light.dir, np.float64)
            light.pos[:] = self._light_centre + rot @ (np.asarray(light.pos, np.float64) - self._light_centre)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about unit `axis` by `angle` (Rodrigues): [3, 3]."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


register_shift(
    ShiftSpec(
        "video_easy",
        "moving video behind the scene (sky and backdrop), slow and simple (DMC-GB video_easy)",
        VideoShift,
        VideoOptions,
        {"surfaces": False, "speed": 1.0, "cut_every": 0, "complexity": 2, "light_motion": 0.15},
    )
)
register_shift(
    ShiftSpec(
        "video_hard",
        "moving video behind the scene and on the floor/table, fast, intricate, cutting between clips "
        "(DMC-GB video_hard)",
        VideoShift,
        VideoOptions,
        {"surfaces": True, "speed": 2.5, "cut_every": 10, "complexity": 6, "light_motion": 0.35},
    )
)
