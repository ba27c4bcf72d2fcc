"""Networks of DrQ-v2 (Yarats et al. 2021) and PIE-G (Yuan et al. 2022), written from the papers'
public configurations (``facebookresearch/drqv2``, ``gemcollector/PIE-G``).

Every encoder takes what the replay buffer and the acting loop give: uint8 stacked frames
``[B, H, W, 3k]`` (oldest first) or float32 states ``[B, S]``, and returns ``[B, repr_dim]``.

- `ConvEncoder` (DrQ-v2): ``x / 255 - 0.5``, four 3x3 conv layers of 32 channels (the first with
  stride 2), ReLU, flattened: 32 x 35 x 35 = 39,200 features at 84x84; trained by the critic.
- `StateEncoder`: the state vector itself (a state-based DDPG agent with DrQ-v2's heads).
- `FrozenEncoder` (PIE-G): a registry encoder kept frozen. ResNets run their early stages only
  (``conv1`` ... ``layer{pieg_layers}``, default layer2: 128 x 11 x 11 per 84x84 frame) on
  ``x / 255 - 0.5`` as PIE-G does; other encoders give their pooled embedding with their own
  preprocessing. Per stack, the features of frames 2..k and their differences to the previous
  frame are concatenated and projected by a trained Linear + LayerNorm to `repr_dim` (1024).
  BatchNorm layers of the frozen encoder stay in training mode while the agent updates, so
  their running statistics follow the training frames (PIE-G's finding); acting uses them.
- `Actor`: Linear + LayerNorm + tanh trunk (`feature_dim`), MLP (`hidden_dim`, ReLU) to the
  tanh mean of a clipped Gaussian with a scheduled std. `Critic`: the same trunk and two Q MLPs.
"""

from __future__ import annotations

import torch
from torch import nn

from vfmbench.encoders.base import Encoder
from vfmbench.utils.errors import ConfigError


def weight_init(m: nn.Module) -> None:
    """DrQ-v2's initialisation: orthogonal weights (ReLU gain for conv layers), zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight.data)
        if m.bias is not None:
            m.bias.data.fill_(0.0)
    elif isinstance(m, nn.Conv2d):
        nn.init.orthogonal_(m.weight.data, nn.init.calculate_gain("relu"))
        if m.bias is not None:
            m.bias.data.fill_(0.0)


def _nchw(obs: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, C]`` -> float ``[B, C, H, W]`` in [-0.5, 0.5]."""
    return obs.permute(0, 3, 1, 2).float() / 255.0 - 0.5


class ConvEncoder(nn.Module):
    """DrQ-v2's encoder: stacked frames ``[B, H, W, 3k]`` uint8 -> ``[B, 32 * h * w]``."""

    trainable = True

    def __init__(self, channels: int, resolution: int):
        super().__init__()
        self.convnet = nn.Sequential(nn.Conv2d(channels, 32, 3, stride=2), nn.ReLU(),
                                     nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
                                     nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
                                     nn.Conv2d(32, 32, 3, stride=1), nn.ReLU())
        side = (resolution - 3) // 2 + 1 - 6
        if side < 1:
            raise ConfigError(f"the DrQ-v2 encoder needs frames of at least 16 pixels, got {resolution}")
        self.repr_dim = 32 * side * side
        self.apply(weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.convnet(_nchw(obs)).flatten(1)


class StateEncoder(nn.Module):
    """The state vector as the representation: float ``[B, S]`` -> ``[B, S]``."""

    trainable = False

    def __init__(self, state_dim: int):
        super().__init__()
        self.repr_dim = state_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()


class FrozenEncoder(nn.Module):
    """PIE-G's encoder around a frozen registry encoder (see the module docstring):
    ``[B, H, W, 3k]`` uint8 -> ``[B, repr_dim]``; only the projection trains."""

    trainable = True  # the projection

    def __init__(self, inner: Encoder, frames: int, resolution: int, repr_dim: int = 1024, layers: int = 2):
        super().__init__()
        if frames < 2:
            raise ConfigError("PIE-G encodes frame differences: frame_stack must be at least 2")
        self.inner = inner.requires_grad_(False)
        self.frames, self.layers = frames, layers
        self.resnet = hasattr(inner, "trunk") and hasattr(inner.trunk, "layer1") and hasattr(inner.trunk, "maxpool")
        self.inner.eval()
        with torch.no_grad():
            probe = self._features(torch.zeros(1, resolution, resolution, 3 * frames, dtype=torch.uint8))
        self.fc = nn.Linear(probe.shape[1], repr_dim)
        self.ln = nn.LayerNorm(repr_dim)
        nn.init.orthogonal_(self.fc.weight.data)
        self.fc.bias.data.fill_(0.0)
        self.repr_dim = repr_dim

    def train(self, mode: bool = True) -> "FrozenEncoder":
        super().train(mode)
        self.inner.eval()
        for m in self.inner.modules():  # BatchNorm statistics follow the training frames
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train(mode)
        return self

    @torch.no_grad()
    def _frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, H, W, 3]`` uint8 -> ``[N, F...]`` frozen features."""
        if self.resnet:
            t = self.inner.trunk
            x = t.maxpool(t.relu(t.bn1(t.conv1(_nchw(frames)))))
            for i in range(1, self.layers + 1):
                x = getattr(t, f"layer{i}")(x)
            return x
        return self.inner(frames).float()

    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        b, h, w, c = obs.shape
        k = self.frames
        if c != 3 * k:
            raise ValueError(f"PIE-G encoder on {k} stacked frames expects {3 * k} channels, got {c}")
        frames = obs.reshape(b, h, w, k, 3).permute(0, 3, 1, 2, 4).reshape(b * k, h, w, 3)
        f = self._frame_features(frames)
        f = f.reshape(b, k, *f.shape[1:])
        current = f[:, 1:]
        return torch.cat([current, current - f[:, :-1]], 1).flatten(1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.ln(self.fc(self._features(obs)))


def sample_action(mu: torch.Tensor, std: float, clip: float | None) -> torch.Tensor:
    """DrQ-v2's truncated normal: ``mu + eps``, ``eps ~ N(0, std)`` clipped to ``[-clip, clip]``
    (no clip when None), the sum clamped into (-1, 1) with a straight-through gradient to `mu`."""
    eps = torch.randn_like(mu) * std
    if clip is not None:
        eps = eps.clamp(-clip, clip)
    x = mu + eps
    clamped = x.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return x - x.detach() + clamped.detach()


class Actor(nn.Module):
    """``[B, repr_dim]`` -> tanh mean action ``[B, A]``."""

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.policy = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.ReLU(inplace=True),
                                    nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True),
                                    nn.Linear(hidden_dim, action_dim))
        self.apply(weight_init)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.policy(self.trunk(h)))


class Critic(nn.Module):
    """Twin Q functions: ``([B, repr_dim], [B, A])`` -> ``[B, 2]``."""

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int, hidden_dim: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())

        def q() -> nn.Sequential:
            return nn.Sequential(nn.Linear(feature_dim + action_dim, hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, 1))

        self.q1, self.q2 = q(), q()
        self.apply(weight_init)

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.trunk(h), action], dim=-1)
        return torch.cat([self.q1(x), self.q2(x)], dim=-1)


def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * net + (1 - tau) * target`` for every parameter."""
    with torch.no_grad():
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, tau)


__all__ = ["Actor", "ConvEncoder", "Critic", "FrozenEncoder", "StateEncoder", "sample_action", "soft_update",
           "weight_init"]
