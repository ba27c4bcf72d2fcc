"""The task contract: pixel observations, proprioception, privileged state, success, an expert.

A `Task` is one environment instance. Observations are dicts of NumPy arrays:

- ``pixels``: uint8 ``[H, W, 3]`` from the task's fixed camera
- ``state``: float32 ``[S]`` privileged state (object and gripper poses, goal) for the `state` encoder
- ``proprio``: float32 ``[P]`` proprioception given to the policy (``P`` may be 0)
- ``goal_pixels`` / ``goal_state``: the goal image and its state, when goal-conditioned
- ``mask`` / ``goal_mask``: bool ``[H, W]`` ground-truth masks of the frame (and goal image),
  when ``TaskConfig.masks`` is set

``TaskConfig.shift`` renders the task under a robustness shift (``vfmbench shifts list``);
`Task.mask` gives ground-truth masks of the task-relevant parts of the current frame;
``TaskConfig.wrappers`` lists observation wrappers (`vfmbench.tasks.wrappers`) that
`make_task` applies on top of the task. `Task.spaces` is the typed description of what a
policy sees and does (`TaskSpaces`); datasets store it in their manifest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vfmbench.utils.errors import ActionError, ConfigError

Observation = dict[str, np.ndarray]


@dataclass
class CameraConfig:
    """A free camera: where it looks, from how far, at which angles (degrees)."""

    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distance: float = 1.0
    azimuth: float = 90.0
    elevation: float = -60.0


@dataclass
class WrapperConfig:
    """An observation wrapper (`vfmbench tasks wrappers`) and its options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskConfig:
    """Options every pixel task accepts; task families add defaults for `camera` and `proprio`."""

    resolution: int = 84
    goal_conditioned: bool = False
    proprio: bool | None = None  # None: the task's default (the paper's choice)
    camera: CameraConfig | None = None  # None: the task's default camera
    max_episode_steps: int | None = None  # None: the task's default
    shift: str = "none"  # appearance shift (`vfmbench shifts list`); training uses "none"
    shift_options: dict[str, Any] = field(default_factory=dict)  # that shift's options
    mask_groups: list[str] | None = None  # task-relevant parts in `Task.mask`; None: the task's default
    masks: bool = False  # observations carry "mask" (and "goal_mask") of those parts
    reward: Literal["sparse", "dense"] | None = None  # families that offer both (Fetch; None: sparse)
    action_repeat: int | None = None  # environment steps per action (None: the task's default)
    wrappers: list[WrapperConfig] = field(default_factory=list)  # applied in order by make_task

    def validate(self) -> None:
        from vfmbench.tasks.shifts import validate_shift

        if not 16 <= self.resolution <= 1024:
            raise ConfigError(f"resolution must be between 16 and 1024 pixels, got {self.resolution}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ConfigError(f"max_episode_steps must be positive, got {self.max_episode_steps}")
        if self.action_repeat is not None and not 1 <= self.action_repeat <= 100:
            raise ConfigError(f"action_repeat must be between 1 and 100, got {self.action_repeat}")
        validate_shift(self.shift, self.shift_options)
        from vfmbench.tasks.wrappers import validate_wrapper

        for wrapper in self.wrappers:
            validate_wrapper(wrapper)


@dataclass(frozen=True)
class TaskSpaces:
    """What a policy sees and does on a task: the sizes agents and policies are built from.

    ``image_shape`` is ``(H, W, C)`` of ``pixels`` (uint8); ``state_dim`` / ``proprio_dim`` are the
    widths of the float32 ``state`` / ``proprio`` vectors (``proprio_dim`` may be 0);
    ``action_dim`` the width of actions in [-1, 1]; ``goal_conditioned``: observations carry
    ``goal_pixels`` / ``goal_state``.
    """

    action_dim: int
    state_dim: int
    proprio_dim: int
    image_shape: tuple[int, int, int] | None = None  # None: the task renders no pixels
    goal_conditioned: bool = False

    def vector_dim(self, key: str) -> int:
        """Width of the vector observation `key` ("state" or "proprio")."""
        dims = {"state": self.state_dim, "proprio": self.proprio_dim}
        if key not in dims:
            raise ConfigError(f"observation {key!r} is not a vector; vector observations: {', '.join(dims)}")
        return dims[key]

    @classmethod
    def from_description(cls, task: dict[str, Any], source: str = "task description") -> "TaskSpaces":
        """The spaces recorded in a dataset manifest's or run's task description (`Task.describe`)."""
        try:
            res = task.get("resolution")
            channels = int(task.get("image_channels") or 3)
            return cls(action_dim=int(task["action_dim"]), state_dim=int(task["state_dim"]),
                       proprio_dim=int(task["proprio_dim"]), image_shape=None if res is None else (res, res, channels),
                       goal_conditioned=bool(task.get("goal_conditioned", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source} lacks the task's sizes ({exc!r}); it was not written by vfmbench") from None


@dataclass
class StepResult:
    """One step: the next observation, the environment's own reward, success at this step, and
    ``done`` once the episode's time limit is reached."""

    observation: Observation
    reward: float
    success: bool
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


def checked_action(task: "Task", action: np.ndarray) -> np.ndarray:
    """`action` as float64 ``[A]`` clipped to [-1, 1]; `ActionError` for a wrong size or NaN/inf
    values (which MuJoCo would otherwise answer by silently resetting the simulation)."""
    a = np.asarray(action, dtype=np.float64)
    if a.size != task.action_dim:
        raise ActionError(f"{task.name} takes actions of {task.action_dim} numbers, got shape {a.shape}")
    a = a.reshape(task.action_dim)
    if not np.isfinite(a).all():
        raise ActionError(f"{task.name} received a non-finite action {a.tolist()}; the policy has diverged "
                          "(check its training losses)")
    return np.clip(a, -1.0, 1.0)


class Task(ABC):
    """One environment instance of a registered task."""

    name: str
    config: TaskConfig
    action_dim: int
    state_dim: int
    proprio_dim: int
    max_episode_steps: int
    # False: observations carry no ``pixels`` (nor ``mask``, ``goal_pixels``, ``goal_mask``), so a
    # step renders nothing; set by evaluations and RL runs whose agent reads only the state. A
    # wrapper keeps its task rendering (every wrapper transforms pixels).
    render_pixels: bool = True

    @abstractmethod
    def reset(self, seed: int) -> Observation:
        """Start an episode from `seed` (object and goal placement are a function of it)."""

    @abstractmethod
    def step(self, action: np.ndarray) -> StepResult:
        """Apply an action in [-1, 1]^A; `done` is set after `max_episode_steps` steps."""

    @abstractmethod
    def render(self) -> np.ndarray:
        """The current frame, uint8 [H, W, 3]."""

    @abstractmethod
    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state, float32 [A]."""

    def mask(self, groups: Sequence[str] | None = None) -> np.ndarray:
        """Ground-truth mask of task-relevant parts (`groups`; None: the configured ones) in the
        current frame, aligned with `render`: bool ``[H, W]``."""
        raise NotImplementedError(f"task {self.name!r} provides no ground-truth masks")

    @property
    def spaces(self) -> TaskSpaces:
        """Sizes of observations and actions (`TaskSpaces`)."""
        r = self.config.resolution
        return TaskSpaces(self.action_dim, self.state_dim, self.proprio_dim, (r, r, 3), self.config.goal_conditioned)

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything that defines the observations (camera, resolution, versions) for manifests."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release renderers and simulators."""

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
