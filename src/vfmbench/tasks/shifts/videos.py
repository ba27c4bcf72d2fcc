"""Background videos: user files (mp4 and other ffmpeg formats, GIF, a folder of frames, a folder
of clips as DMC-GB ships them) and a procedural moving texture, the built-in default since nothing
can be downloaded here.

Reading mp4 needs the ``video`` extra (imageio-ffmpeg); GIFs and frame folders need only
imageio and Pillow, which the ``sim`` extra brings.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from vfmbench.utils.errors import ConfigError
from vfmbench.utils.imports import require

FFMPEG_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def check_source(path: str, where: str) -> None:
    """Raise `ConfigError` naming `where` unless `path` is a readable video, GIF, frame folder or
    folder of clips, and `MissingDependencyError` naming the `video` extra when it holds clips only
    ffmpeg decodes and imageio-ffmpeg is not installed (checked here, so that a command fails before
    its first rollout rather than at the shift that needs the decoder)."""
    p = Path(path).expanduser()
    if p.is_dir():
        clips = _clip_files(p)
        if not _frame_files(p) and not clips:
            raise ConfigError(f"{where}: folder {p} holds neither frames ({', '.join(IMAGE_SUFFIXES)}) nor clips "
                              f"({', '.join((*FFMPEG_SUFFIXES, '.gif'))})")
        if not _frame_files(p) and any(f.suffix.lower() in FFMPEG_SUFFIXES for f in clips):
            require("imageio_ffmpeg", extra="video")
        return
    if not p.is_file():
        raise ConfigError(f"{where}: {p} does not exist; give video files, GIFs or folders of frames")
    if p.suffix.lower() not in (*FFMPEG_SUFFIXES, ".gif"):
        raise ConfigError(f"{where}: {p.name} is not a video ({', '.join(FFMPEG_SUFFIXES)}), a GIF or a folder")
    if p.suffix.lower() in FFMPEG_SUFFIXES:
        require("imageio_ffmpeg", extra="video")


def _frame_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def _clip_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in (*FFMPEG_SUFFIXES, ".gif"))


def expand_sources(sources: tuple[str, ...]) -> tuple[str, ...]:
    """The clips of `sources`: a folder of video files (DMC-GB's ``video_easy/``, ``video_hard/``)
    becomes its files in name order; files and folders of frames stay one clip each."""
    clips: list[str] = []
    for src in sources:
        p = Path(src).expanduser()
        if p.is_dir() and not _frame_files(p):
            clips += [str(f) for f in _clip_files(p)]
        else:
            clips.append(str(p))
    return tuple(clips)


@lru_cache(maxsize=16)
def load_video(path: str, resolution: int, max_frames: int, fit: str = "crop") -> np.ndarray:
    """Up to `max_frames` frames of `path` resized to `resolution`: uint8 ``[T, R, R, 3]``.

    `fit` "crop" centre-crops each frame square first; "stretch" resizes the whole frame (as
    DMC-GB does). Cached per arguments; the returned array is read-only. Raises `ConfigError` for
    a missing, unreadable or empty source.
    """
    import imageio.v2 as imageio

    p = Path(path).expanduser()
    check_source(str(p), "video source")
    if p.is_dir():
        frames = [imageio.imread(f) for f in _frame_files(p)[:max_frames]]
    else:
        frames = []
        try:
            with imageio.get_reader(p) as reader:
                for frame in reader:
                    frames.append(np.asarray(frame))
                    if len(frames) >= max_frames:
                        break
        except (OSError, RuntimeError, ValueError) as exc:
            if not frames:
                raise ConfigError(f"video source {p} is not a readable video: {str(exc).strip().splitlines()[0]}") from None
            # a truncated clip: keep the frames decoded before the damage, as a player would
    if not frames:
        raise ConfigError(f"video source {p} has no frames")
    out = np.stack([_square(f, resolution, fit) for f in frames])
    out.setflags(write=False)
    return out


def _square(frame: np.ndarray, resolution: int, fit: str = "crop") -> np.ndarray:
    """Centre-crop to a square (`fit` "crop") or not ("stretch"), resize to `resolution`: uint8 [R, R, 3]."""
    from PIL import Image

    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    frame = frame[..., :3].astype(np.uint8)
    h, w = frame.shape[:2]
    side = min(h, w) if fit == "crop" else None
    if side is not None:
        top, left = (h - side) // 2, (w - side) // 2
        frame = frame[top : top + side, left : left + side]
    crop = Image.fromarray(np.ascontiguousarray(frame))
    return np.asarray(crop.resize((resolution, resolution), Image.Resampling.BILINEAR))


class ProceduralVideo:
    """A moving texture: drifting plane waves seen through a random palette, plus soft blobs that
    glide across it. `complexity` sets how many waves and blobs and how fine the waves are; the
    frame is a pure function of the generator's draws and the time, so any frame can be asked for."""

    def __init__(self, rng: np.random.Generator, complexity: int, resolution: int):
        k = complexity + 1
        self.angle = rng.uniform(0, 2 * np.pi, k)
        self.freq = rng.uniform(0.5, 1.0 + complexity, k)  # cycles across the frame
        self.velocity = rng.uniform(0.01, 0.04, k) * rng.choice([-1, 1], k)  # cycles per unit time
        self.phase = rng.uniform(0, 2 * np.pi, k)
        self.palette = rng.uniform(0, 255, (4, 3))
        n = complexity
        self.blob_centre = rng.uniform(0, 1, (n, 2))
        self.blob_velocity = rng.uniform(-0.03, 0.03, (n, 2))
        self.blob_radius = rng.uniform(0.06, 0.2, n)
        self.blob_colour = rng.uniform(0, 255, (n, 3))
        coords = (np.arange(resolution) + 0.5) / resolution
        self.y, self.x = np.meshgrid(coords, coords, indexing="ij")

    def frame(self, time: float) -> np.ndarray:
        """The texture at `time` (one unit per environment step at speed 1): uint8 ``[R, R, 3]``."""
        waves = np.zeros_like(self.x)
        for a, f, v, ph in zip(self.angle, self.freq, self.velocity, self.phase):
            along = self.x * np.cos(a) + self.y * np.sin(a)
            waves += np.sin(2 * np.pi * (f * along - v * time) + ph)
        u = np.clip(0.5 + 0.5 * waves / np.sqrt(len(self.angle)), 0.0, 1.0)
        stops = np.linspace(0, 1, len(self.palette))
        img = np.stack([np.interp(u, stops, self.palette[:, c]) for c in range(3)], axis=-1)
        for c, v, r, col in zip(self.blob_centre, self.blob_velocity, self.blob_radius, self.blob_colour):
            cx, cy = (c + v * time) % 1.0
            dx = np.abs(self.x - cx)
            dy = np.abs(self.y - cy)
            dist = np.hypot(np.minimum(dx, 1 - dx), np.minimum(dy, 1 - dy))  # wraps around the edges
            alpha = np.clip((r - dist) / 0.03, 0.0, 1.0)[..., None]
            img = (1 - alpha) * img + alpha * col
        return img.round().astype(np.uint8)
