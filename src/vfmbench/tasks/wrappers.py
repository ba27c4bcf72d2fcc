"""Observation wrappers: a task seen through a transformation of its observations.

A wrapper is itself a `Task`: it forwards everything to the task it wraps and passes every
observation (from `reset` and `step`) through `observation`. Wrappers are named in
``TaskConfig.wrappers`` and applied in order by `vfmbench.tasks.make_task`, the one function
that builds tasks, so collection, training data, evaluation and robustness all see the same
observations. A wrapper that changes shapes overrides `spaces`.

Registered wrappers (`WRAPPERS`, ``vfmbench tasks wrappers``):

- ``gt_mask``: pixels outside the task's ground-truth mask of its task-relevant parts
  (``TaskConfig.mask_groups``) are set to `fill`: the oracle version of SAM-G's masked
  observations (paper 002 §4), the upper bound for any segmenter.
- ``frame_stack``: the last `frames` frames stacked on the channel axis (DrQ-v2; paper 002 uses 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vfmbench.registry import Registry
from vfmbench.tasks.base import Observation, StepResult, Task, TaskSpaces, WrapperConfig
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError


class ObservationWrapper(Task):
    """Base class: forwards to `task` and transforms observations with `observation`."""

    def __init__(self, task: Task, config: WrapperConfig):
        self.task = task
        self.wrapper_config = config

    def observation(self, obs: Observation) -> Observation:
        """The wrapped observation; `obs` is the inner task's (do not modify it in place)."""
        raise NotImplementedError

    def on_reset(self, obs: Observation) -> Observation:
        """The wrapped first observation of an episode (default: `observation`)."""
        return self.observation(obs)

    def on_step(self, obs: Observation) -> Observation:
        """The wrapped observation after a step (default: `observation`)."""
        return self.observation(obs)

    @classmethod
    def observations(cls, wrappers: Sequence["ObservationWrapper"], obs: Sequence[Observation],
                     reset: bool) -> list[Observation]:
        """The wrapped observations of several environments wrapped alike (same class and options),
        after a reset or a step. One by one here; a wrapper that runs a model (``samg``) overrides
        this to process the whole batch at once (`reset_all` / `step_all`)."""
        return [w.on_reset(o) if reset else w.on_step(o) for w, o in zip(wrappers, obs)]

    # -- the Task contract, forwarded -----------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        return self.on_reset(self.task.reset(seed))

    def step(self, action: np.ndarray) -> StepResult:
        result = self.task.step(action)
        return replace(result, observation=self.on_step(result.observation))

    def render(self) -> np.ndarray:
        return self.task.render()

    def expert_action(self) -> np.ndarray:
        return self.task.expert_action()

    def mask(self, groups: Sequence[str] | None = None) -> np.ndarray:
        return self.task.mask(groups)

    @property
    def spaces(self) -> TaskSpaces:
        return self.task.spaces

    def describe(self) -> dict[str, Any]:
        inner = self.task.describe()
        return {**inner, "wrappers": [*inner.get("wrappers", []),
                                      {"name": self.wrapper_config.name, "options": dict(self.wrapper_config.options)}]}

    def close(self) -> None:
        self.task.close()

    def __getattr__(self, name: str) -> Any:  # name, config, action_dim, max_episode_steps, ...
        if name == "task":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.task, name)


@dataclass(frozen=True)
class WrapperSpec:
    """A registered wrapper: its class and typed options."""

    name: str
    description: str
    cls: type[ObservationWrapper]
    options_cls: type

    def options(self, data: dict[str, Any] | None) -> Any:
        return from_dict(self.options_cls, data or {}, source=f"wrapper {self.name!r} options")


WRAPPERS: Registry[WrapperSpec] = Registry("wrapper")


def validate_wrapper(config: WrapperConfig) -> None:
    """Raise `UnknownNameError` / `ConfigError` if the wrapper or its options are invalid."""
    WRAPPERS.get(config.name).options(config.options)


def _alike(envs: Sequence[Task]) -> bool:
    first = envs[0]
    return isinstance(first, ObservationWrapper) and all(
        type(e) is type(first) and e.wrapper_config == first.wrapper_config for e in envs)


def reset_all(envs: Sequence[Task], seeds: Sequence[int]) -> list[Observation]:
    """``[env.reset(seed) ...]`` for environments stepped in lockstep, with each wrapper layer that
    all of them share applied to the whole batch at once (`ObservationWrapper.observations`):
    SAM-G segments B frames in one forward pass instead of B passes."""
    if not _alike(envs):
        return [env.reset(seed) for env, seed in zip(envs, seeds)]
    inner = reset_all([e.task for e in envs], seeds)  # type: ignore[attr-defined]
    return type(envs[0]).observations(envs, inner, reset=True)  # type: ignore[attr-defined]


def step_all(envs: Sequence[Task], actions: Sequence[np.ndarray]) -> list[StepResult]:
    """``[env.step(action) ...]`` for environments stepped in lockstep, batching shared wrapper
    layers as `reset_all` does. The results equal stepping each environment alone."""
    if not _alike(envs):
        return [env.step(a) for env, a in zip(envs, actions)]
    inner = step_all([e.task for e in envs], actions)  # type: ignore[attr-defined]
    obs = type(envs[0]).observations(envs, [r.observation for r in inner], reset=False)  # type: ignore[attr-defined]
    return [replace(r, observation=o) for r, o in zip(inner, obs)]


def apply_wrappers(task: Task, wrappers: Sequence[WrapperConfig]) -> Task:
    """`task` wrapped by each of `wrappers` in order (the first is innermost)."""
    for config in wrappers:
        spec = WRAPPERS.get(config.name)
        task = spec.cls(task, replace(config, options=dict(config.options)))
    return task


# -- gt_mask ---------------------------------------------------------------------------------------


def dilate_masks(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Boolean masks ``[..., H, W]`` grown by `pixels` in every direction (a square structuring
    element of side ``2 pixels + 1``, `scipy.ndimage.binary_dilation`); 0 returns them as they are."""
    if pixels == 0:
        return masks
    from scipy.ndimage import binary_dilation

    return binary_dilation(masks, structure=np.ones((1,) * (masks.ndim - 2) + (2 * pixels + 1,) * 2, bool))


@dataclass
class GTMaskOptions:
    fill: int = 0  # value of masked-out pixels (0-255)
    goal: bool = True  # mask goal images too (needs task_config.masks for their masks)
    dilate: int = 0  # grow the masks by this many pixels (thin parts, e.g. a pole, get wider)

    def validate(self) -> None:
        if not 0 <= self.fill <= 255:
            raise ConfigError(f"wrapper gt_mask: fill must be between 0 and 255, got {self.fill}")
        if self.dilate < 0:
            raise ConfigError(f"wrapper gt_mask: dilate must be 0 or more pixels, got {self.dilate}")


class GTMaskWrapper(ObservationWrapper):
    """``pixels`` (and ``goal_pixels``) outside the ground-truth mask set to `fill`."""

    def __init__(self, task: Task, config: WrapperConfig):
        super().__init__(task, config)
        self.opts: GTMaskOptions = WRAPPERS.get(config.name).options(config.options)

    def observation(self, obs: Observation) -> Observation:
        out = dict(obs)
        mask = dilate_masks(obs["mask"] if "mask" in obs else self.task.mask(), self.opts.dilate)
        out["pixels"] = np.where(mask[..., None], obs["pixels"], np.uint8(self.opts.fill))
        if self.opts.goal and "goal_pixels" in obs:
            if "goal_mask" not in obs:
                raise ConfigError("wrapper gt_mask masks goal images with their ground-truth masks: "
                                  "set task_config.masks=true (or the wrapper option goal=false)")
            goal_mask = dilate_masks(obs["goal_mask"], self.opts.dilate)
            out["goal_pixels"] = np.where(goal_mask[..., None], obs["goal_pixels"], np.uint8(self.opts.fill))
        return out


WRAPPERS.register(WrapperSpec("gt_mask", "pixels outside the ground-truth mask of the task-relevant parts "
                              "set to a fill value (oracle masking, paper 002)", GTMaskWrapper, GTMaskOptions))


# -- frame_stack -----------------------------------------------------------------------------------


@dataclass
class FrameStackOptions:
    frames: int = 3  # frames per observation (paper 002 Table 6: 3)

    def validate(self) -> None:
        if not 1 <= self.frames <= 16:
            raise ConfigError(f"wrapper frame_stack: frames must be between 1 and 16, got {self.frames}")


class FrameStackWrapper(ObservationWrapper):
    """``pixels`` become the last `frames` frames stacked on the channel axis, oldest first:
    uint8 ``[H, W, 3 * frames]``; at reset the first frame fills the stack (as DrQ-v2 does).
    ``mask`` and goal images stay those of the current frame. Any encoder reads stacked frames:
    the agent encodes each frame and concatenates the embeddings (`FrameStackEncoder`)."""

    def __init__(self, task: Task, config: WrapperConfig):
        super().__init__(task, config)
        self.opts: FrameStackOptions = WRAPPERS.get(config.name).options(config.options)
        self._frames: list[np.ndarray] = []

    def on_reset(self, obs: Observation) -> Observation:
        self._frames = [obs["pixels"]] * self.opts.frames
        return self._stacked(obs)

    def on_step(self, obs: Observation) -> Observation:
        self._frames = [*self._frames[1:], obs["pixels"]]
        return self._stacked(obs)

    def _stacked(self, obs: Observation) -> Observation:
        return {**obs, "pixels": np.concatenate(self._frames, axis=-1)}

    @property
    def spaces(self) -> TaskSpaces:
        inner = self.task.spaces
        if inner.image_shape is None:
            return inner
        h, w, c = inner.image_shape
        return replace(inner, image_shape=(h, w, c * self.opts.frames))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["image_channels"] = self.spaces.image_shape[2] if self.spaces.image_shape else None
        return out


WRAPPERS.register(WrapperSpec("frame_stack", "pixels are the last `frames` frames stacked on the channel axis "
                              "(DrQ-v2, paper 002: 3); every encoder reads them frame by frame",
                              FrameStackWrapper, FrameStackOptions))
