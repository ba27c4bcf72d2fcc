"""The task contract: pixel observations, proprioception, privileged state, success, an expert.

A `Task` is one environment instance. Observations are dicts of NumPy arrays:

- ``pixels``: uint8 ``[H, W, 3]`` from the task's fixed camera
- ``state``: float32 ``[S]`` privileged state (object and gripper poses, goal) for the `state` encoder
- ``proprio``: float32 ``[P]`` proprioception given to the policy (``P`` may be 0)
- ``goal_pixels`` / ``goal_state``: the goal image and its state, when goal-conditioned
- ``mask`` / ``goal_mask``: bool ``[H, W]`` ground-truth masks of the frame (and goal image),
  when ``TaskConfig.masks`` is set

``TaskConfig.shift`` renders the task under a robustness shift (``vfmbench shifts list``);
`Task.mask` gives ground-truth masks of the task-relevant parts of the current frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Observation = dict[str, np.ndarray]


@dataclass
class CameraConfig:
    """A free camera: where it looks, from how far, at which angles (degrees)."""

    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distance: float = 1.0
    azimuth: float = 90.0
    elevation: float = -60.0


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

    def validate(self) -> None:
        from vfmbench.tasks.shifts import validate_shift
        from vfmbench.utils.errors import ConfigError

        if not 16 <= self.resolution <= 1024:
            raise ConfigError(f"resolution must be between 16 and 1024 pixels, got {self.resolution}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ConfigError(f"max_episode_steps must be positive, got {self.max_episode_steps}")
        validate_shift(self.shift, self.shift_options)


@dataclass
class StepResult:
    observation: Observation
    success: bool
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """One environment instance of a registered task."""

    name: str
    config: TaskConfig
    action_dim: int
    state_dim: int
    proprio_dim: int
    max_episode_steps: int

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

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything that defines the observations (camera, resolution, versions) for manifests."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release renderers and simulators."""

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
