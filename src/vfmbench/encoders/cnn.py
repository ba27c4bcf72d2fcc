"""`e2e_cnn`: a small convolutional encoder with a spatial-softmax head, cheap enough to train
jointly with a policy on a CPU (about 9 M multiply-adds per 84x84 frame)."""

from __future__ import annotations

import torch
from torch import nn

from vfmbench.encoders.base import Encoder, Preprocessing
from vfmbench.encoders.layers import SpatialSoftmax


class SmallCNN(Encoder):
    """conv(16, s2) - conv(32, s2) - conv(32) - conv(32), ReLU, spatial softmax -> ``[B, 2*num_kp]``."""

    family = "cnn"

    def __init__(self, name: str = "e2e_cnn", channels: int = 32, num_kp: int = 32):
        super().__init__()
        self.name, self.trainable, self.pretrained, self.weights_id = name, True, False, "trained"
        self.preprocessing = Preprocessing(scale=1.0 / 255.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        self.convs = nn.Sequential(
            nn.Conv2d(3, channels // 2, 3, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, 3, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3),
        )
        self.keypoints = SpatialSoftmax(channels, num_kp)
        self.embed_dim = 2 * num_kp

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.keypoints(features)
