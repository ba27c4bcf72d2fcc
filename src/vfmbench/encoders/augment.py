"""Image augmentation for encoders trained end to end (offline learners and online RL alike).

- `RandomShift` (DrQ, Kostrikov et al. 2020; DrQ-v2, Yarats et al. 2021): pad by `pad` pixels
  with replicated borders and crop back to the input size at a random offset; identity in
  eval mode.
- `RandomCrop` (paper 001 §IV-A: 76x76 crops of 84x84 frames): a random `size` x `size` crop
  in training, the centre crop in eval mode, so evaluation sees the training input size.

Both take uint8 ``[B, H, W, C]`` batches on any device, draw one offset per image from
torch's generator, and return uint8. `AugmentedEncoder` puts one in front of an encoder.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vfmbench.encoders.base import Encoder
from vfmbench.utils.errors import ConfigError

AugmentKind = Literal["shift", "crop", "none"]


def _gather_crops(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-image windows ``x[b, top_b:top_b+h, left_b:left_b+w]`` of ``[B, H, W, C]``, batched."""
    rows = top[:, None] + torch.arange(h, device=x.device)[None]  # [B, h]
    cols = left[:, None] + torch.arange(w, device=x.device)[None]  # [B, w]
    bidx = torch.arange(x.shape[0], device=x.device)[:, None, None]
    return x[bidx, rows[:, :, None], cols[:, None, :]]


class RandomShift(nn.Module):
    """Random shift by up to `pad` pixels: uint8 ``[B, H, W, C]`` -> same shape (training only)."""

    def __init__(self, pad: int = 4):
        super().__init__()
        if pad < 0:
            raise ConfigError(f"random shift: pad must be non-negative, got {pad}")
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.pad == 0:
            return x
        b, h, w, c = x.shape
        p = self.pad
        top = torch.randint(0, 2 * p + 1, (b,), device=x.device)
        left = torch.randint(0, 2 * p + 1, (b,), device=x.device)
        # pad by replicating the borders (uint8 index_select: no float round trip), then take each
        # image's window through a strided view of all (2p+1)^2 windows: one gather for the batch
        padded = x.index_select(1, torch.arange(-p, h + p, device=x.device).clamp_(0, h - 1))
        padded = padded.index_select(2, torch.arange(-p, w + p, device=x.device).clamp_(0, w - 1))
        sb, sh, sw, sc = padded.stride()
        windows = padded.as_strided((b, 2 * p + 1, 2 * p + 1, h, w, c), (sb, sh, sw, sh, sw, sc))
        return windows[torch.arange(b, device=x.device), top, left]


class RandomCrop(nn.Module):
    """Random `size` x `size` crop in training, centre crop in eval: ``[B, H, W, C] -> [B, size, size, C]``."""

    def __init__(self, size: int = 76):
        super().__init__()
        if size < 1:
            raise ConfigError(f"random crop: size must be positive, got {size}")
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        c = self.size
        if c > h or c > w:
            raise ConfigError(f"random crop of {c}x{c} pixels is larger than the {h}x{w} frames; "
                              "set train.crop_size to at most the task's resolution")
        if self.training:
            top = torch.randint(0, h - c + 1, (b,), device=x.device)
            left = torch.randint(0, w - c + 1, (b,), device=x.device)
        else:
            top = torch.full((b,), (h - c) // 2, device=x.device)
            left = torch.full((b,), (w - c) // 2, device=x.device)
        return _gather_crops(x, top, left, c, c)


def make_augmentation(kind: AugmentKind, shift_pad: int = 4, crop_size: int = 76) -> nn.Module:
    """`RandomShift`, `RandomCrop` or identity by name."""
    if kind == "shift":
        return RandomShift(shift_pad)
    if kind == "crop":
        return RandomCrop(crop_size)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"augmentation {kind!r} is not one of 'shift', 'crop', 'none'")


class AugmentedEncoder(Encoder):
    """A trainable encoder behind its training augmentation (a crop also applies in eval mode)."""

    def __init__(self, inner: Encoder, augment: nn.Module):
        super().__init__()
        self.inner, self.augment = inner, augment
        for attr in ("name", "family", "embed_dim", "trainable", "pretrained", "input_key", "weights_id", "preprocessing"):
            setattr(self, attr, getattr(inner, attr))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner(self.augment(images))

    def spatial_features(self, images: torch.Tensor) -> torch.Tensor:
        mode = self.augment.training
        self.augment.eval()  # feature maps of the evaluation view
        try:
            x = self.augment(images)
        finally:
            self.augment.train(mode)
        return self.inner.spatial_features(x)
