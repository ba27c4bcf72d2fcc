"""An agent = encoder + feature/proprio normalisers + policy; what evaluation runs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vfmbench.encoders.base import Encoder
from vfmbench.policies.base import Policy


class Normalizer(nn.Module):
    """``(x - mean) / std`` with statistics fitted on training data; identity until fitted."""

    def __init__(self, dim: int):
        super().__init__()
        self.mean = nn.Buffer(torch.zeros(dim))
        self.std = nn.Buffer(torch.ones(dim))

    def fit(self, x: np.ndarray | torch.Tensor, eps: float = 1e-6) -> "Normalizer":
        if self.mean.shape[0] == 0:
            return self
        x = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, self.mean.shape[0])
        if len(x):
            self.mean.copy_(x.mean(0))
            self.std.copy_(x.std(0, unbiased=False).clamp_min(eps) if len(x) > 1 else torch.ones_like(self.std))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Agent(nn.Module):
    """Turns raw observations into actions.

    `encode` maps a batch of raw inputs (uint8 images ``[B, H, W, 3]`` or states ``[B, S]``)
    to normalised features ``[B, D]``; `act` takes histories of those and returns ``[B, K, A]``.
    """

    def __init__(self, encoder: Encoder, policy: Policy, proprio_dim: int):
        super().__init__()
        self.encoder = encoder
        self.policy = policy
        self.feature_norm = Normalizer(encoder.embed_dim)
        self.proprio_norm = Normalizer(proprio_dim)

    @property
    def input_key(self) -> str:
        return self.encoder.input_key

    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        return self.feature_norm(self.encoder(raw).float())

    def persistent_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: everything but a frozen encoder (rebuilt from the registry)."""
        state = self.state_dict()
        if not self.encoder.trainable:
            state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
        return state
