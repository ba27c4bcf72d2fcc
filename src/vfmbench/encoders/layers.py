"""Small building blocks shared by encoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpatialSoftmax(nn.Module):
    """Keypoints from feature maps (Levine et al. 2016; robomimic's variant).

    A 1x1 conv maps ``[B, C, H, W]`` to ``num_kp`` heat maps; a softmax over each map gives the
    expected (x, y) in [-1, 1]. Output ``[B, 2 * num_kp]``.
    """

    def __init__(self, in_channels: int, num_kp: int = 32, temperature: float = 1.0, learnable_temperature: bool = False):
        super().__init__()
        self.num_kp = num_kp
        self.conv = nn.Conv2d(in_channels, num_kp, kernel_size=1)
        t = torch.tensor(float(temperature))
        self.temperature = nn.Parameter(t) if learnable_temperature else nn.Buffer(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        heat = self.conv(x).flatten(2) / self.temperature  # [B, K, H*W]
        attn = F.softmax(heat, dim=-1)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        ex = attn @ gx.reshape(-1, 1)
        ey = attn @ gy.reshape(-1, 1)
        return torch.cat([ex, ey], dim=-1).reshape(b, 2 * self.num_kp)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 16 channels per group, as Diffusion Policy substitutes for BatchNorm."""
    return nn.GroupNorm(num_groups=max(1, channels // 16), num_channels=channels)
