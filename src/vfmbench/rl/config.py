"""Typed settings of online RL runs and the papers' presets.

`AgentConfig` holds an agent's hyper-parameters, `RLRunSpec` one run (task, agent, encoder,
masking, frame budget, seed, device, evaluation). Frames count environment steps as DrQ-v2 does:
agent steps x action repeat (2 on DMControl and Adroit, applied inside `Task.step`).

Presets (`preset_overrides`), per agent and task family:

- ``drqv2`` (default): DrQ-v2's published configuration (Yarats et al. 2021, the
  ``facebookresearch/drqv2`` configs): Adam lr 1e-4, batch 256, feature 50, hidden 1024,
  tau 0.01, n-step 3, discount 0.99, replay 1e6, 4,000 seed frames, uniform exploration for the
  first 4,000 frames, update every 2 agent steps, exploration std linear 1.0 -> 0.1 over 100k
  agent steps ("easy" tasks) or 500k ("medium": cheetah, quadruped), clip 0.3; walker tasks
  n-step 1 and batch 512. PIE-G (Yuan et al. 2022, ``gemcollector/PIE-G``) keeps these and
  uses feature 256 with a 1024-wide projection after the frozen ResNet.
- ``samg``: paper 002 Table 6, DMControl-GB column: lr 1e-3, batch 128, replay 5e5 (the rest as
  ``drqv2``); Adroit column: lr 1e-4, batch 256, replay 1e6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from vfmbench.tasks.base import TaskConfig
from vfmbench.utils.errors import ConfigError

AgentName = Literal["drqv2", "pieg"]
# Frame budgets of the papers: DrQ-v2 trains easy tasks for 1.1M frames and medium ones for 3.1M;
# paper 002 Table 7 reports 1M (3M for cheetah and quadruped).
MEDIUM_DMC_TASKS = ("dmc_cheetah_run", "dmc_quadruped_walk")


@dataclass
class AgentConfig:
    """Hyper-parameters of a DrQ-v2-style actor-critic (units: agent steps unless named frames)."""

    lr: float = 1e-4  # Adam, encoder, actor and critic
    batch_size: int = 256
    feature_dim: int = 50  # width of the LayerNorm + tanh trunk of actor and critic
    hidden_dim: int = 1024  # width of the actor's and critics' MLPs
    critic_tau: float = 0.01  # Polyak rate of the target critic
    nstep: int = 3
    discount: float = 0.99
    std_init: float = 1.0  # exploration std schedule: linear from std_init to std_final ...
    std_final: float = 0.1
    std_steps: int = 100_000  # ... over this many agent steps
    std_clip: float = 0.3  # clip of the target-policy and actor-update noise
    seed_frames: int = 4000  # no updates before this many frames
    explore_frames: int = 4000  # uniform random actions before this many frames
    update_every: int = 2  # one update every this many agent steps
    frame_stack: int = 3
    shift_pad: int = 4  # random-shift augmentation (pixels)
    replay_capacity: int = 1_000_000  # transitions kept (bounded memory; the oldest are dropped)
    pieg_repr_dim: int = 1024  # PIE-G: width of the projection after the frozen encoder
    pieg_layers: int = 2  # PIE-G: ResNet stages used (conv1 ... layer2)

    def validate(self) -> None:
        positive = {"lr": self.lr, "batch_size": self.batch_size, "feature_dim": self.feature_dim,
                    "hidden_dim": self.hidden_dim, "nstep": self.nstep, "update_every": self.update_every,
                    "frame_stack": self.frame_stack, "replay_capacity": self.replay_capacity,
                    "std_steps": self.std_steps, "pieg_repr_dim": self.pieg_repr_dim}
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"agent_config.{key} must be positive, got {value}")
        if not 0 < self.critic_tau <= 1:
            raise ConfigError(f"agent_config.critic_tau must be in (0, 1], got {self.critic_tau}")
        if not 0 <= self.discount <= 1:
            raise ConfigError(f"agent_config.discount must be in [0, 1], got {self.discount}")
        if self.seed_frames < 0 or self.explore_frames < 0 or self.shift_pad < 0:
            raise ConfigError("agent_config.seed_frames, explore_frames and shift_pad must be 0 or more")
        if self.pieg_layers not in (1, 2, 3, 4):
            raise ConfigError(f"agent_config.pieg_layers must be 1 to 4 (ResNet stages), got {self.pieg_layers}")
        if self.replay_capacity <= self.nstep + self.frame_stack:
            raise ConfigError(f"agent_config.replay_capacity ({self.replay_capacity}) must exceed nstep + frame_stack")

    def std(self, step: int) -> float:
        """Exploration std at agent step `step` (DrQ-v2's ``linear(init, final, duration)``)."""
        mix = min(max(step / self.std_steps, 0.0), 1.0)
        return (1.0 - mix) * self.std_init + mix * self.std_final


@dataclass
class RLRunSpec:
    """One online RL run.

    ``encoder``: ``conv`` (DrQ-v2's own conv net, trained), ``state`` (privileged state: a
    state-based agent, e.g. an expert for data collection) or, for PIE-G, any registry image
    encoder kept frozen (``imagenet_resnet18`` by default); ``pretrained`` False builds it with
    random weights (labelled random). ``mask``: None, ``oracle`` (the ``gt_mask`` wrapper) or a
    segmenter of the SAM-G masking wrapper; training and evaluation both see masked frames.
    ``frames``: the target number of environment frames (rerunning a run with a larger target
    continues it).
    """

    task: str
    agent: AgentName = "drqv2"
    encoder: str | None = None  # None: conv for drqv2, imagenet_resnet18 for pieg
    pretrained: bool | None = None  # None: pretrained if the encoder has weights
    mask: str | None = None
    mask_options: dict[str, Any] = field(default_factory=dict)
    frames: int = 1_000_000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    preset: str = "drqv2"
    agent_config: AgentConfig = field(default_factory=AgentConfig)
    task_config: TaskConfig = field(default_factory=TaskConfig)
    eval_every_frames: int = 10_000
    eval_episodes: int = 10
    eval_envs: int = 10
    checkpoint_every_frames: int = 20_000  # at the first episode end after each multiple

    @property
    def encoder_name(self) -> str:
        if self.encoder is not None:
            return self.encoder
        return "imagenet_resnet18" if self.agent == "pieg" else "conv"

    def validate(self) -> None:
        if self.agent not in ("drqv2", "pieg"):
            raise ConfigError(f"agent must be drqv2 or pieg, got {self.agent!r}")
        if self.agent == "drqv2" and self.encoder_name not in ("conv", "state"):
            raise ConfigError(f"agent drqv2 trains its own conv encoder (encoder conv) or acts on the state "
                              f"(encoder state), got {self.encoder_name!r}; frozen registry encoders go with "
                              "--agent pieg")
        if self.agent == "pieg" and self.encoder_name in ("conv", "state"):
            raise ConfigError(f"agent pieg needs a frozen image encoder from the registry (vfmbench encoders list), "
                              f"got {self.encoder_name!r}")
        if self.frames < 1:
            raise ConfigError(f"frames must be positive, got {self.frames}")
        if self.eval_every_frames < 0 or self.eval_episodes < 0 or self.eval_envs < 1:
            raise ConfigError("eval_every_frames and eval_episodes must be 0 or more, eval_envs at least 1")
        if self.checkpoint_every_frames < 1:
            raise ConfigError(f"checkpoint_every_frames must be positive, got {self.checkpoint_every_frames}")
        if self.mask is not None and self.task_config.wrappers:
            raise ConfigError("give masking either as mask or as task_config.wrappers, not both")
        if self.mask_options and self.mask is None:
            raise ConfigError(f"mask_options {self.mask_options} have no effect without a mask; add --mask oracle "
                              "(or a segmenter) or leave them out")
        self.agent_config.validate()
        self.task_config.validate()


def task_family(task: str) -> str:
    """The registered family of `task` (``dmc``, ``adroit``, ``fetch``, ...)."""
    from vfmbench.tasks import get_task_spec

    return get_task_spec(task).family


def preset_overrides(preset: str, agent: str, task: str) -> dict[str, Any]:
    """`AgentConfig` values of `preset` for `agent` on `task` (see the module docstring)."""
    if preset not in ("drqv2", "samg"):
        raise ConfigError(f"preset must be drqv2 or samg, got {preset!r}")
    family = task_family(task)
    out: dict[str, Any] = {}
    if task in MEDIUM_DMC_TASKS:
        out["std_steps"] = 500_000
    if task.startswith("dmc_walker_"):
        out.update(nstep=1, batch_size=512)
    if agent == "pieg":
        out["feature_dim"] = 256
    if preset == "samg":
        if family == "adroit":
            out.update(lr=1e-4, batch_size=256, replay_capacity=1_000_000)
        else:
            out.update(lr=1e-3, batch_size=128, replay_capacity=500_000)
    return out


def default_frames(task: str) -> int:
    """Paper 002 Table 7: 1M frames, 3M for cheetah and quadruped."""
    return 3_000_000 if task in MEDIUM_DMC_TASKS else 1_000_000


def replay_bytes(capacity: int, frame_shape: tuple[int, ...], state_dim: int, action_dim: int) -> int:
    """Upper bound of the replay buffer's memory in bytes (frames uint8, vectors float32)."""
    per = math.prod(frame_shape) + 4 * (state_dim + action_dim + 1) + 8 + 4 + 2
    return capacity * per
