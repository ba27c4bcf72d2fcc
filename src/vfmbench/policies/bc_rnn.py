"""BC-RNN in the style of robomimic (Mandlekar et al., 2021), as used by paper 001 §III-B2.

Each step's observation (features, proprioception and, goal-conditioned, the goal features)
enters a 2-layer LSTM (hidden size 400); a linear layer with tanh maps its output to the
action. Training: sequences of `seq_len` (10) consecutive steps from a sampled time, MSE on
every step's action. Evaluation: one step at a time, carrying the hidden state, which is
reset at the start of each episode and every `seq_len` steps (robomimic's rollout horizon),
so evaluation sees the same context lengths as training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vfmbench.policies.base import (
    Metrics,
    Batch,
    Generators,
    MethodConfig,
    MethodSpec,
    Policy,
    PolicyDims,
    observation_dim,
    register_method,
)
from vfmbench.utils.errors import ConfigError

RNN_TYPES: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class BCRNNConfig(MethodConfig):
    """Defaults: robomimic BC-RNN with paper 001 §IV-A2's optimiser (Adam 1e-4, batch 128)."""

    lr: float = 1e-4
    batch_size: int = 128
    seq_len: int = 10
    rnn_type: Literal["lstm", "gru"] = "lstm"
    hidden_dim: int = 400
    num_layers: int = 2

    def validate(self) -> None:
        if self.seq_len < 1:
            raise ConfigError(f"method_config.seq_len must be positive, got {self.seq_len}")
        if self.hidden_dim < 1 or self.num_layers < 1:
            raise ConfigError("method_config.hidden_dim and num_layers must be positive")


class BCRNNPolicy(Policy):
    """Training: ``[B, T, D] -> [B, T, A]`` over windows of T = seq_len; `act`: ``[B, 1, D] -> [B, 1, A]``."""

    config: BCRNNConfig

    def __init__(self, config: BCRNNConfig, dims: PolicyDims):
        super().__init__(config, dims)
        self.obs_offsets = tuple(range(config.seq_len))
        self.action_offsets = tuple(range(config.seq_len))
        self.rnn = RNN_TYPES[config.rnn_type](observation_dim(dims), config.hidden_dim, config.num_layers,
                                              batch_first=True)
        self.out = nn.Linear(config.hidden_dim, dims.action_dim)
        self._hidden: Hidden | None = None
        self._steps = 0

    @staticmethod
    def step_inputs(batch: Batch) -> torch.Tensor:
        """Per-step RNN inputs ``[B, T, D (+P) (+D)]``: features, proprioception, the goal repeated."""
        parts = [batch["features"]]
        if batch.get("proprio") is not None and batch["proprio"].shape[-1]:
            parts.append(batch["proprio"])
        if "goal" in batch:
            parts.append(batch["goal"][:, None].expand(-1, batch["features"].shape[1], -1))
        return torch.cat(parts, dim=-1)

    def forward(self, batch: Batch, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """Actions ``[B, T, A]`` for every step and the final hidden state."""
        y, hidden = self.rnn(self.step_inputs(batch), hidden)
        return torch.tanh(self.out(y)), hidden

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        pred, _ = self(batch)
        loss = F.mse_loss(pred, batch["actions"])
        return loss, {"mse": loss.detach()}

    def reset(self, batch_size: int) -> None:
        self._hidden, self._steps = None, 0

    def act(self, batch: Batch, generator: Generators = None) -> torch.Tensor:
        if self._steps % self.config.seq_len == 0:
            self._hidden = None
        last = {k: (v[:, -1:] if k in ("features", "proprio") else v) for k, v in batch.items()}
        actions, self._hidden = self(last, self._hidden)
        self._steps += 1
        return actions


register_method(MethodSpec(
    "bc_rnn", "behaviour cloning with an LSTM over sequences of 10 steps, robomimic style (paper 001 §III-B2)",
    BCRNNConfig, BCRNNPolicy, paper="001",
))
