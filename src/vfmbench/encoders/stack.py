"""Stacked frames through any single-frame encoder.

The ``frame_stack`` task wrapper gives ``pixels`` of ``k`` frames stacked on the channel axis,
``[B, H, W, 3k]``. `FrameStackEncoder` encodes each frame with the wrapped encoder and
concatenates the embeddings oldest first, ``[B, k * D]``: frozen foundation models see the
frames they were trained on, and a policy sees motion as the difference between embeddings (as
frame-stacked pretrained encoders are used with DrQ-v2 / PIE-G). Augmentation in front of it
shifts all frames of a stack alike.
"""

from __future__ import annotations

from typing import Any

import torch

from vfmbench.encoders.base import Encoder, EncoderInfo


class FrameStackEncoder(Encoder):
    """``[B, H, W, 3 * frames]`` uint8 -> ``[B, frames * inner.embed_dim]``, one frame at a time."""

    def __init__(self, inner: Encoder, frames: int):
        super().__init__()
        self.inner = inner
        self.frames = frames
        self.name, self.family, self.input_key = inner.name, inner.family, inner.input_key
        self.trainable, self.pretrained = inner.trainable, inner.pretrained
        self.embed_dim = inner.embed_dim * frames
        self.preprocessing, self.weights_id = inner.preprocessing, inner.weights_id

    def _frames(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, 3k]`` -> ``[B * k, H, W, 3]`` (frame-major within each sample)."""
        b, h, w, c = images.shape
        if c != 3 * self.frames:
            raise ValueError(f"{self.name} on {self.frames} stacked frames expects {3 * self.frames} channels, got {c}")
        return images.reshape(b, h, w, self.frames, 3).permute(0, 3, 1, 2, 4).reshape(b * self.frames, h, w, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner(self._frames(images)).reshape(images.shape[0], -1)

    def spatial_features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, frames * C, h, w]``: each frame's feature map, stacked on the channel axis."""
        f = self.inner.spatial_features(self._frames(images))
        return f.reshape(images.shape[0], -1, *f.shape[-2:])

    def info(self) -> EncoderInfo:
        info = self.inner.info()
        info.embed_dim, info.extra = self.embed_dim, {**info.extra, "frames": self.frames}
        return info

    def cache_identity(self) -> dict[str, Any]:
        return {**self.inner.cache_identity(), "frames": self.frames, "embed_dim": self.embed_dim}

    @property
    def label(self) -> str:
        return self.inner.label
