"""Behaviour cloning as in paper 000 §5.2 and A.2.

Observation features go through a [256, 128, 64] SELU MLP; goal features (goal-conditioned)
through another; proprioception is projected to 128 dimensions (64 without a goal) and
concatenated; a [256, 128, 64] SELU head predicts the action. Loss: MSE on actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vfmbench.policies.base import Batch, Metrics, Generators, MethodConfig, MethodSpec, Policy, PolicyDims, mlp, register_method


@dataclass
class BCConfig(MethodConfig):
    lr: float = 1e-3  # paper 000 uses 0.008 with 2900 trajectories; see presets
    batch_size: int = 256
    hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    head: list[int] = field(default_factory=lambda: [256, 128, 64])


class BCTrunk(nn.Module):
    """The paper-000 network up to the head's last hidden layer: ``[B, D] (+goal, proprio) -> [B, H]``."""

    def __init__(self, config: BCConfig, dims: PolicyDims):
        super().__init__()
        self.obs_mlp = mlp([dims.feature_dim, *config.hidden], nn.SELU, out_activation=True)
        width = config.hidden[-1]
        self.goal_mlp = None
        if dims.goal_conditioned:
            self.goal_mlp = mlp([dims.feature_dim, *config.hidden], nn.SELU, out_activation=True)
            width += config.hidden[-1]
        self.proprio_proj = None
        if dims.proprio_dim:
            proj = 128 if dims.goal_conditioned else 64
            self.proprio_proj = nn.Linear(dims.proprio_dim, proj)
            width += proj
        self.head = mlp([width, *config.head], nn.SELU, out_activation=True)
        self.out_dim = config.head[-1]

    def forward(self, features: torch.Tensor, proprio: torch.Tensor | None, goal: torch.Tensor | None) -> torch.Tensor:
        parts = [self.obs_mlp(features)]
        if self.goal_mlp is not None:
            assert goal is not None, "goal-conditioned policy needs goal features"
            parts.append(self.goal_mlp(goal))
        if self.proprio_proj is not None:
            assert proprio is not None
            parts.append(self.proprio_proj(proprio))
        return self.head(torch.cat(parts, dim=-1))


class BCPolicy(Policy):
    """Deterministic BC: ``[B, 1, D] -> [B, 1, A]``, MSE loss."""

    def __init__(self, config: BCConfig, dims: PolicyDims):
        super().__init__(config, dims)
        self.trunk = BCTrunk(config, dims)
        self.out = nn.Linear(self.trunk.out_dim, dims.action_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        h = self.trunk(batch["features"][:, -1], _last(batch.get("proprio")), batch.get("goal"))
        return self.out(h)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        loss = F.mse_loss(self(batch), batch["actions"][:, 0])
        return loss, {"mse": loss.detach()}

    def act(self, batch: Batch, generator: Generators = None) -> torch.Tensor:
        return self(batch).unsqueeze(1)


def _last(x: torch.Tensor | None) -> torch.Tensor | None:
    if x is None or x.shape[-1] == 0:
        return None
    return x[:, -1]


register_method(MethodSpec("bc", "behaviour cloning, MSE on actions (paper 000 §5.2)", BCConfig, BCPolicy, paper="000"))
