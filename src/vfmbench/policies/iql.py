"""Inverse implicit Q-learning (paper 000 §4.2, §5.3, A.2): IQL (Kostrikov et al., 2022) whose
critic loss is the inverse soft-Q objective of IQ-Learn (Garg et al., 2021), so it learns from
expert ``(s, a, s')`` transitions without rewards. docs/methods.md derives the losses and says
why they take this form; per batch of expert transitions:

- twin critics, IQ-Learn's offline objective (value term over expert states, chi^2
  regulariser), for i = 1, 2:
  ``r_i = Q_i(s, a) - gamma V_i(s')`` (the implicit reward)
  ``L_Q = sum_i -E[r_i] + E[V_i(s) - gamma V_i(s')] + E[r_i^2] / (4 alpha)``
  where ``V_i(s) = T log E_{a ~ U[-1,1]^A}[exp(Q_i(s, a) / T)]`` is the soft value of the
  Boltzmann policy of ``Q_i`` (Monte Carlo over `value_samples` uniform actions, with gradient)
- value network (IQL expectile regression, tau = 0.7):
  ``L_V = E[|tau - 1(u < 0)| u^2]``, ``u = min_i Qbar_i(s, a) - V_psi(s)`` (target critics)
- actor (IQL advantage-weighted regression, Gaussian, the mean at evaluation):
  ``L_pi = -E[min(exp(beta (min_i Qbar_i(s, a) - V_psi(s))), max_weight) log pi(a|s)]``

Target critics follow the critics by Polyak averaging. Observations are taken at offsets
(0, 1): ``s`` and ``s'`` (the last step of an episode is its own successor: Fetch episodes end
by a time limit, not a terminal state). With a jointly trained encoder only the actor loss
trains it; critics and the value network see detached features.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from vfmbench.policies.base import (
    Metrics,
    Generators,
    Batch,
    MethodConfig,
    MethodSpec,
    Policy,
    PolicyDims,
    mlp,
    observation_dim,
    observation_vector,
    polyak_update,
    register_method,
)
from vfmbench.policies.gaussian_bc import gaussian_log_prob
from vfmbench.utils.errors import ConfigError


@dataclass
class InverseIQLConfig(MethodConfig):
    """Defaults: paper 000 A.2 and Table 5 (FetchPush); IQL/IQ-Learn defaults for the rest."""

    lr: float = 1.5e-4  # actor
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    batch_size: int = 1024
    discount: float = 0.99
    expectile: float = 0.7
    beta: float = 3.0  # AWR inverse temperature
    max_weight: float = 100.0  # clip of exp(beta * advantage)
    chi2_alpha: float = 0.5  # chi^2 regulariser E[r^2] / (4 alpha) of IQ-Learn
    temperature: float = 1.0  # of the Boltzmann policy whose soft value enters the inverse critic loss
    value_samples: int = 16  # uniform actions per state for the soft value
    target_update_rate: float = 0.005
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    value_hidden: list[int] = field(default_factory=lambda: [256, 256])
    min_log_std: float = -5.0
    max_log_std: float = 2.0

    def validate(self) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise ConfigError(f"method_config.expectile must be in (0, 1), got {self.expectile}")
        if not 0.0 <= self.discount < 1.0:
            raise ConfigError(f"method_config.discount must be in [0, 1), got {self.discount}")
        if self.chi2_alpha <= 0:
            raise ConfigError(f"method_config.chi2_alpha must be positive, got {self.chi2_alpha}")
        if self.temperature <= 0 or self.value_samples < 1:
            raise ConfigError("method_config.temperature must be positive and value_samples at least 1")
        if not 0.0 < self.target_update_rate <= 1.0:
            raise ConfigError(f"method_config.target_update_rate must be in (0, 1], got {self.target_update_rate}")


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """IQL's asymmetric squared loss ``E[|tau - 1(diff < 0)| diff^2]`` (``L_2^tau``, Kostrikov et al.)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


class TwinQ(nn.Module):
    """Two critics ``Q_i(x, a)``: ``[B, X], [B, A] -> [2, B]``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: list[int]):
        super().__init__()
        self.q = nn.ModuleList(mlp([obs_dim + action_dim, *hidden, 1]) for _ in range(2))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.q])


class GaussianActor(nn.Module):
    """``[B, X] -> (mean, log_std)``, each ``[B, A]``: a tanh-squashed ReLU MLP mean (paper 000:
    [256, 256, 256]) and a learned, state-independent log-std, as in the IQL implementation
    paper 000 modified (CORL, Tarasov et al. 2022)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: list[int], log_std_range: tuple[float, float]):
        super().__init__()
        self.net = nn.Sequential(mlp([obs_dim, *hidden, action_dim]), nn.Tanh())
        self.log_std = nn.Parameter(torch.zeros(action_dim))
        self.log_std_range = log_std_range

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.net(obs)
        return mean, self.log_std.clamp(*self.log_std_range).expand_as(mean)


class InverseIQLPolicy(Policy):
    """Inverse IQL; `act` returns the actor's mean ``[B, 1, A]``."""

    obs_offsets = (0, 1)  # s and s'
    config: InverseIQLConfig

    def __init__(self, config: InverseIQLConfig, dims: PolicyDims):
        super().__init__(config, dims)
        x = observation_dim(dims)
        self.actor = GaussianActor(x, dims.action_dim, config.actor_hidden, (config.min_log_std, config.max_log_std))
        self.critic = TwinQ(x, dims.action_dim, config.critic_hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = mlp([x, *config.value_hidden, 1])

    # -- pieces -------------------------------------------------------------------------
    def _v(self, obs: torch.Tensor) -> torch.Tensor:
        """The IQL value network ``V_psi``: ``[B, X] -> [B]``."""
        return self.value(obs).squeeze(-1)

    def soft_value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(s) = T log E_{a ~ U[-1, 1]^A}[exp(Q(s, a) / T)]`` per critic, ``[B, X] -> [2, B]``: the
        soft value of the Boltzmann policy ``pi_Q ~ exp(Q / T)`` (up to the constant ``T A log 2``),
        by Monte Carlo; gradients flow into the critics."""
        c = self.config
        b, n = obs.shape[0], c.value_samples
        actions = torch.rand(b * n, self.dims.action_dim, device=obs.device) * 2 - 1
        q = self.critic(obs.repeat_interleave(n, 0), actions).view(2, b, n)
        return c.temperature * (torch.logsumexp(q / c.temperature, dim=-1) - math.log(n))

    def critic_loss(self, obs: torch.Tensor, action: torch.Tensor,
                    next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """IQ-Learn's inverse soft-Q loss (offline, chi^2), summed over the twin critics.

        obs, next_obs ``[B, X]``, action ``[B, A]``. Returns the loss and the implicit rewards
        ``r_i = Q_i(s, a) - gamma V_i(s')`` ``[2, B]``.
        """
        c = self.config
        value, next_value = self.soft_value(obs), self.soft_value(next_obs)
        reward = self.critic(obs, action) - c.discount * next_value
        expert_term = -reward.mean(1)
        value_term = (value - c.discount * next_value).mean(1)
        chi2 = reward.pow(2).mean(1) / (4 * c.chi2_alpha)
        return (expert_term + value_term + chi2).sum(), reward

    def actor_loss(self, obs: torch.Tensor, action: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
        """IQL's advantage-weighted regression on the dataset actions."""
        weight = torch.exp(self.config.beta * advantage).clamp(max=self.config.max_weight)
        mean, log_std = self.actor(obs)
        return -(weight * gaussian_log_prob(mean, log_std, action)).mean()

    # -- Policy -------------------------------------------------------------------------
    def _split(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Observation vectors of s (with gradients), s and s' (detached), each ``[B, X]``."""
        obs = observation_vector(batch, slice(0, 1))
        return obs, obs.detach(), observation_vector(batch, slice(1, 2), detach=True)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        """Sum of the value, critic and actor losses.

        The three depend on disjoint parameters (value network; critics; actor and a jointly
        trained encoder), so one backward pass and one step of each optimiser equals IQL's
        three separate updates; all use the value network from before this step, as IQL does.
        """
        obs, obs_d, next_obs = self._split(batch)
        action = batch["actions"][:, 0]
        with torch.no_grad():
            target_q = self.target_critic(obs_d, action).min(0).values
        v = self._v(obs_d)
        v_loss = expectile_loss(target_q - v, self.config.expectile)
        q_loss, reward = self.critic_loss(obs_d, action, next_obs)
        advantage = (target_q - v).detach()
        pi_loss = self.actor_loss(obs, action, advantage)
        metrics = {"value_loss": v_loss.detach(), "critic_loss": q_loss.detach(), "actor_loss": pi_loss.detach(),
                   "implicit_reward": reward.detach().mean(), "advantage": advantage.mean()}
        return v_loss + q_loss + pi_loss, metrics

    def configure_optimizers(self, encoder_params: list[nn.Parameter], total_steps: int) -> list[torch.optim.Optimizer]:
        """Actor (+ a jointly trained encoder), critics, value network: one Adam each."""
        c = self.config
        return [
            torch.optim.Adam([*self.actor.parameters(), *encoder_params], lr=c.lr, weight_decay=c.weight_decay),
            torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, weight_decay=c.weight_decay),
            torch.optim.Adam(self.value.parameters(), lr=c.value_lr, weight_decay=c.weight_decay),
        ]

    def update(self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int) -> Metrics:
        """One step of each optimiser, then the target critics follow (Polyak)."""
        metrics = super().update(batch, optimizers, step)
        polyak_update(self.target_critic, self.critic, self.config.target_update_rate)
        return metrics

    def act(self, batch: Batch, generator: Generators = None) -> torch.Tensor:
        mean, _ = self.actor(observation_vector(batch, slice(-1, None)))
        return mean.unsqueeze(1)


register_method(MethodSpec(
    "inverse_iql", "implicit Q-learning with the inverse soft-Q (IQ-Learn) critic loss: offline RL from expert "
    "(s, a) without rewards; Gaussian actor by advantage-weighted regression (paper 000 §4.2, §5.3)",
    InverseIQLConfig, InverseIQLPolicy, paper="000",
))
