"""Building an online RL agent and its environments from an `RLRunSpec`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vfmbench.rl.agent import ActorCritic
from vfmbench.rl.config import RLRunSpec
from vfmbench.rl.networks import ConvEncoder, FrozenEncoder, StateEncoder
from vfmbench.tasks import TaskConfig, TaskSpaces
from vfmbench.tasks.base import WrapperConfig
from vfmbench.utils.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; `ConfigError` if CUDA is
    asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA device is visible to PyTorch; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from None


def mask_wrappers(mask: str | None, options: dict) -> list[WrapperConfig]:
    """The observation wrappers of ``--mask``: ``oracle`` is the ground-truth ``gt_mask`` wrapper;
    any other name is a segmenter of the SAM-G masking wrapper ``samg``."""
    from vfmbench.tasks.wrappers import WRAPPERS

    if mask is None:
        return []
    if options.get("segmenter", mask) != mask:
        raise ConfigError(f"--mask {mask} and mask_options.segmenter={options['segmenter']} disagree: --mask names "
                          "the segmenter (mask_options are its wrapper's other options)")
    if mask == "oracle":
        return [WrapperConfig("gt_mask", dict(options))]
    try:
        import vfmbench.masking  # noqa: F401  (registers the samg wrapper)
    except ImportError:
        pass
    if "samg" not in WRAPPERS:
        raise ConfigError(f"--mask {mask}: SAM-G masking (the samg observation wrapper) is not part of this "
                          "installation yet; use --mask oracle (ground-truth masks) meanwhile")
    return [WrapperConfig("samg", {"segmenter": mask, **options})]


def run_task_config(spec: RLRunSpec) -> TaskConfig:
    """The task config training and evaluation use: the spec's, with the masking wrapper."""
    wrappers = mask_wrappers(spec.mask, spec.mask_options) + list(spec.task_config.wrappers)
    cfg = dataclasses.replace(spec.task_config, wrappers=wrappers)
    cfg.validate()
    return cfg


@dataclass(frozen=True)
class ObsFormat:
    """What the agent reads: ``key`` ("pixels" or "state"), one observation's ``shape`` as the
    replay buffer stores it, and ``frames`` stacked when acting and sampling."""

    key: str
    shape: tuple[int, ...]
    frames: int


def obs_format(spec: RLRunSpec, spaces: TaskSpaces) -> ObsFormat:
    if spec.encoder_name == "state":
        return ObsFormat("state", (spaces.state_dim,), 1)
    if spaces.image_shape is None:
        raise ConfigError(f"{spec.task} renders no pixels; use --encoder state")
    if spaces.image_shape[2] != 3:
        raise ConfigError(f"{spec.task}: the agent stacks frames itself (frame_stack {spec.agent_config.frame_stack}); "
                          "remove the frame_stack wrapper from task_config.wrappers")
    return ObsFormat("pixels", tuple(spaces.image_shape), spec.agent_config.frame_stack)


def build_encoder(spec: RLRunSpec, spaces: TaskSpaces) -> tuple[nn.Module, str, bool]:
    """The agent's encoder, its label for tables (``(random)`` for random weights of a pretrained
    entry) and whether it is pretrained."""
    name = spec.encoder_name
    c = spec.agent_config
    if name == "state":
        return StateEncoder(spaces.state_dim), "state", False
    res = spaces.image_shape[0] if spaces.image_shape else spec.task_config.resolution
    if name == "conv":
        return ConvEncoder(3 * c.frame_stack, res), "conv", False
    from vfmbench.encoders import create_encoder, encoder_label, get_encoder_spec

    entry = get_encoder_spec(name)
    if entry.input_key != "pixels":
        raise ConfigError(f"encoder {name!r} does not read pixels; PIE-G needs an image encoder")
    if spec.pretrained and entry.weights is not None and entry.weights.status() != "installed":
        raise ConfigError(f"encoder {name!r}: its weights are not installed; run `vfmbench weights download {name}`, "
                          "or pass --random-weights to run it with random weights (labelled random)")
    pretrained = spec.pretrained
    if pretrained is None:
        pretrained = entry.weights is not None and entry.weights.status() == "installed"
        if entry.weights is not None and not pretrained:
            raise ConfigError(f"encoder {name!r}: its weights are not installed; run `vfmbench weights download "
                              f"{name}`, or pass --random-weights to run it with random weights (labelled random)")
    inner = create_encoder(name, pretrained=pretrained)
    label = encoder_label(inner)
    return FrozenEncoder(inner, c.frame_stack, res, c.pieg_repr_dim, c.pieg_layers), label, bool(inner.pretrained)


def build_agent(spec: RLRunSpec, spaces: TaskSpaces, device: torch.device) -> tuple[ActorCritic, str, bool]:
    """The run's agent on `device` (seeded by the run's seed), its encoder label and pretraining."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        encoder, label, pretrained = build_encoder(spec, spaces)
        agent = ActorCritic(encoder, spaces.action_dim, spec.agent_config, spec.encoder_name != "state", device)
    return agent, label, pretrained


class StackingPolicy(nn.Module):
    """An `ActorCritic` seen through the `vfmbench.evaluation.evaluate` agent interface: it keeps
    each environment's last `frames` observations and acts with the deterministic mean action."""

    def __init__(self, agent: ActorCritic, fmt: ObsFormat):
        super().__init__()
        self.agent, self.fmt = agent, fmt
        self.act_options: dict = {}  # an RL policy acts with its mean action; it has no acting options
        self._stack: list[np.ndarray] | None = None

    @property
    def observation_keys(self) -> tuple[str, ...]:
        return (self.fmt.key,)

    def reset(self, batch_size: int, seeds=None) -> None:  # noqa: ARG002 - the policy is deterministic
        self._stack = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        x = obs[self.fmt.key]
        if self.fmt.frames == 1:
            return self.agent.act(x, 0, explore=False)
        if self._stack is None:
            self._stack = [x] * self.fmt.frames
        else:
            self._stack = [*self._stack[1:], x]
        return self.agent.act(np.concatenate(self._stack, axis=-1), 0, explore=False)
