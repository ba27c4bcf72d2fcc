"""The policy contract and the method registry.

A policy maps encoder features to actions. It never sees images: the trainer runs the encoder
(or reads cached embeddings) and hands the policy normalised tensors:

- ``features``: ``[B, T_o, D]`` observation features at the offsets in `obs_offsets`
- ``proprio``: ``[B, T_o, P]`` proprioception at the same offsets (``P`` may be 0)
- ``goal``: ``[B, D]`` goal-image features (goal-conditioned policies only)
- ``actions``: ``[B, T_a, A]`` target actions at the offsets in `action_offsets` (training)

Offsets are relative to a sampled time step and clamped to the episode (the first
observation and last action repeat at the edges). At evaluation `act` receives the last
`history` steps of features and proprioception and returns ``[B, K, A]``: the next K actions
to execute before it is asked again.
"""

from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from vfmbench.utils.config import from_dict
from vfmbench.registry import Registry
from vfmbench.utils.errors import ConfigError

Batch = dict[str, torch.Tensor]
Generators = list[torch.Generator] | torch.Generator | None  # noise sources of a sampling `act`
# scalar training metrics: detached 0-dim tensors (read back only when logged, so that a step
# does not wait for the GPU) or floats
Metrics = dict[str, torch.Tensor | float]


@dataclass
class PolicyDims:
    feature_dim: int
    proprio_dim: int
    action_dim: int
    goal_conditioned: bool


@dataclass
class MethodConfig:
    """Options every method has; subclasses add their own."""

    goal_conditioned: bool = False
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        """Checks every method shares (methods add their own in `validate`): every field whose
        name ends in ``lr`` is a positive finite number, the batch size at least 1, weight decay
        finite and non-negative."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("lr") and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"method_config.{f.name} must be a positive finite number, got {value!r}")
        if self.batch_size < 1:
            raise ConfigError(f"method_config.batch_size must be at least 1, got {self.batch_size}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"method_config.weight_decay must be finite and non-negative, got {self.weight_decay}")


class Policy(nn.Module):
    # method_config keys that change only how the trained policy acts (not its network or training),
    # so an evaluation may set them (`load_agent(act_options=...)`, `vfmbench evaluate --act`)
    act_options: tuple[str, ...] = ()
    obs_offsets: tuple[int, ...] = (0,)
    action_offsets: tuple[int, ...] = (0,)
    history: int = 1  # observation steps `act` needs
    # Training windows may run this many actions past an episode's end (repeating its last action);
    # None: any window start is sampled (windows clamp to the episode).
    action_pad_after: int | None = None

    def __init__(self, config: MethodConfig, dims: PolicyDims):
        super().__init__()
        self.config = config
        self.dims = dims

    @abstractmethod
    def loss(self, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        """Training loss on a batch and scalar metrics to log (`Metrics`: no ``.item()``, which waits
        for the GPU at every step)."""

    @abstractmethod
    def act(self, batch: Batch, generator: Generators = None) -> torch.Tensor:
        """Actions ``[B, K, A]`` to execute next, from the last `history` observation steps.

        Policies that sample draw their noise from `generator`: one CPU ``torch.Generator`` per
        row (per episode; the evaluator seeds each from its episode seed, so an episode's actions
        do not depend on which episodes share its batch) or one for the batch; None: torch's
        global generator."""

    def reset(self, batch_size: int) -> None:  # noqa: B027 - stateless by default
        """Start new episodes (recurrent policies clear their state)."""

    def fit_actions(self, actions: torch.Tensor) -> None:  # noqa: B027 - most policies use raw actions
        """See the training set's actions ``[N, A]`` before training (e.g. to normalise them)."""

    def configure_optimizers(self, encoder_params: list[nn.Parameter], total_steps: int) -> list[torch.optim.Optimizer]:
        """Optimisers for the policy and, when it trains jointly, the encoder (one Adam by default);
        `total_steps` is the length of training (for learning-rate schedules)."""
        params = [*self.parameters(), *encoder_params]
        return [torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay, fused=on_cuda(params))]

    def update(self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int) -> Metrics:
        """One gradient step; methods with several losses or target networks override this.

        ``batch["features"]`` may carry gradients into a jointly trained encoder.
        """
        loss, metrics = self.loss(batch)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        return metrics


@dataclass(frozen=True)
class MethodSpec:
    name: str
    description: str
    config_cls: type[MethodConfig]
    policy_cls: Callable[[Any, PolicyDims], Policy]
    paper: str = ""
    supports_goal: bool = True


METHODS: Registry[MethodSpec] = Registry("method")
register_method = METHODS.register
list_methods = METHODS.names
get_method_spec = METHODS.get


def method_config(name: str, data: dict[str, Any] | None = None, source: str = "method config") -> MethodConfig:
    """The typed config of method `name` from a dict (unknown keys are errors naming the key)."""
    return from_dict(get_method_spec(name).config_cls, data or {}, source=f"{source} ({name})")


def make_policy(name: str, config: MethodConfig | dict[str, Any] | None, dims: PolicyDims) -> Policy:
    """Build the policy of method `name`."""
    spec = get_method_spec(name)
    if not isinstance(config, MethodConfig):
        config = method_config(name, config)
    return spec.policy_cls(config, dims)


def last_step(x: torch.Tensor | None) -> torch.Tensor | None:
    """The last time step of ``[B, T, P]`` as ``[B, P]``; None when absent or ``P == 0``."""
    if x is None or x.shape[-1] == 0:
        return None
    return x[:, -1]


def observation_vector(batch: Batch, steps: slice = slice(None), detach: bool = False) -> torch.Tensor:
    """Features and proprioception of the observation steps `steps`, flattened, plus the goal:
    ``[B, T, D] (+ [B, T, P], [B, D]) -> [B, T*(D+P) (+D)]``. `detach` stops gradients into a
    jointly trained encoder (for critics and value functions)."""
    parts = [batch["features"][:, steps]]
    proprio = batch.get("proprio")
    if proprio is not None and proprio.shape[-1]:
        parts.append(proprio[:, steps])
    x = torch.cat(parts, dim=-1).flatten(1)
    if "goal" in batch:
        x = torch.cat([x, batch["goal"]], dim=-1)
    return x.detach() if detach else x


def observation_dim(dims: PolicyDims, steps: int = 1) -> int:
    """Width of `observation_vector` over `steps` observation steps."""
    return steps * (dims.feature_dim + dims.proprio_dim) + (dims.feature_dim if dims.goal_conditioned else 0)


def on_cuda(params: list[nn.Parameter]) -> bool:
    """Whether every parameter is on a CUDA device (then optimisers use their fused kernels)."""
    return bool(params) and all(p.is_cuda for p in params)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, rate: float) -> None:
    """``target <- (1 - rate) * target + rate * source``, parameter by parameter (buffers copied)."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, rate)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, out_activation: bool = False) -> nn.Sequential:
    """Linear layers through `sizes` with `activation` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or out_activation:
            layers.append(activation())
    return nn.Sequential(*layers)
