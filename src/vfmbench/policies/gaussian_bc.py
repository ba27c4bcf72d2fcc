"""Gaussian behaviour cloning (paper 000 §4.1, the "alternative formulation").

The paper-000 BC network (`BCTrunk`) ends in a linear layer that outputs the mean and the
log standard deviation of a diagonal Gaussian over actions. Training maximises the
likelihood of the expert action; evaluation executes the mean.

    loss = -E[log N(a | mu(s), diag(sigma(s)^2))]
         = E[ sum_j ((a_j - mu_j)^2 / (2 sigma_j^2) + log sigma_j) ] + const

With a learned variance the mean's gradient is scaled by ``1 / sigma^2``, so regions the
network fits badly get a large sigma and then little gradient (Seitzer et al., 2022, "On the
pitfalls of heteroscedastic uncertainty estimation"). `beta_nll` > 0 applies their remedy,
beta-NLL: each step's NLL is weighted by ``stop_gradient(sigma^2)^beta_nll`` (0: plain
maximum likelihood, the default; 0.5 their recommendation; 1: the mean gets MSE's gradient).

The standard deviation's floor (`min_log_std` = -2, std >= 0.135) matters on scripted
demonstrations. Half of fetch_push's frames carry the expert's exact "stay" action; with a floor
of -5 (std 0.007, robomimic's) the predicted std collapses to the floor there, and those frames
then outweigh the moving ones by ~1/sigma^2 (about 22,000 against 60-600) in the likelihood, so
the mean of the moving frames barely trains: success 0.08 against BC's 0.86 (state fetch_push,
200 demonstrations, 5,000 steps). With the floor at -2 the same run reached 0.52, and 0.84 at
10,000 steps (BC: 0.84), see docs/methods.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vfmbench.policies.base import Batch, Metrics, Generators, MethodSpec, Policy, PolicyDims, last_step, register_method
from vfmbench.policies.bc import BCConfig, BCTrunk

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, x: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """Log density of a diagonal Gaussian, summed over the last dimension: ``[..., A] -> [...]``
    (each dimension's term multiplied by `weight` ``[..., A]`` when given)."""
    z = (x - mean) * torch.exp(-log_std)
    terms = -0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI
    return (terms if weight is None else terms * weight).sum(-1)


@dataclass
class GaussianBCConfig(BCConfig):
    min_log_std: float = -2.0  # std >= 0.135 (action units); see the module docstring
    max_log_std: float = 2.0
    beta_nll: float = 0.0  # 0: maximum likelihood; >0: beta-NLL weighting (Seitzer et al. 2022)

    def validate(self) -> None:
        from vfmbench.utils.errors import ConfigError

        if not 0.0 <= self.beta_nll <= 1.0:
            raise ConfigError(f"method_config.beta_nll must be in [0, 1], got {self.beta_nll}")
        if self.min_log_std >= self.max_log_std:
            raise ConfigError(f"min_log_std ({self.min_log_std}) must be below max_log_std ({self.max_log_std})")


class GaussianBCPolicy(Policy):
    """``[B, 1, D] -> N(mu, sigma)`` over ``[B, A]``; `act` returns the mean ``[B, 1, A]``."""

    config: GaussianBCConfig

    def __init__(self, config: GaussianBCConfig, dims: PolicyDims):
        super().__init__(config, dims)
        self.trunk = BCTrunk(config, dims)
        self.out = nn.Linear(self.trunk.out_dim, 2 * dims.action_dim)

    def distribution(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std ``[B, A]`` each, at the last observation step."""
        h = self.trunk(batch["features"][:, -1], last_step(batch.get("proprio")), batch.get("goal"))
        mean, log_std = self.out(h).chunk(2, dim=-1)
        return mean, log_std.clamp(self.config.min_log_std, self.config.max_log_std)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        mean, log_std = self.distribution(batch)
        target = batch["actions"][:, 0]
        weight = (2 * self.config.beta_nll * log_std).exp().detach()  # sigma^(2 beta); 1 for beta = 0
        nll = -gaussian_log_prob(mean, log_std, target, weight=weight).mean()
        with torch.no_grad():
            mse = (mean - target).pow(2).mean()
        return nll, {"nll": nll.detach(), "mse": mse, "std": log_std.detach().exp().mean()}

    def act(self, batch: Batch, generator: Generators = None) -> torch.Tensor:
        mean, _ = self.distribution(batch)
        return mean.unsqueeze(1)


register_method(MethodSpec(
    "gaussian_bc",
    "behaviour cloning with a Gaussian head, maximum likelihood; the mean at evaluation (paper 000 §4.1)",
    GaussianBCConfig, GaussianBCPolicy, paper="000",
))
