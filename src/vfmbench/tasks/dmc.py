"""DeepMind Control Suite pixel tasks (dm_control), set up as DrQ-v2 and DMC-GB use them.

Tasks: the eight of SAM-G (paper 002, Table 7) ``dmc_walker_walk``, ``dmc_walker_stand``,
``dmc_cartpole_swingup``, ``dmc_cheetah_run``, ``dmc_hopper_stand``, ``dmc_finger_spin``,
``dmc_ball_in_cup_catch``, ``dmc_quadruped_walk``, and the cheap ``dmc_cartpole_balance`` and
``dmc_reacher_easy``.

- **Pixels**: ``TaskConfig.resolution`` (84) from the camera DrQ-v2 renders (camera 0; quadruped
  camera 2, ``x``), through the shared `ShiftedRenderer`, so every shift and mask applies.
- **Action repeat** 2 (paper 002 Table 6; ``TaskConfig.action_repeat``): one agent step applies the
  action twice and sums the rewards. Episodes last dm_control's 1,000 environment steps, 500 agent
  steps at repeat 2.
- **Reward**: dm_control's, in [0, 1] per environment step (so returns up to 1,000). **Success**
  only where the task defines one: ``ball_in_cup_catch`` (ball in the cup) and ``reacher_easy``
  (fingertip in the target), the steps where their sparse reward is 1; elsewhere it is always
  False (judge by return).
- **State** for the ``state`` encoder: dm_control's observation vector (the features DrQ-v2's
  state agents use, all computed from the physics state), flattened in key order, float32.
  **Proprioception** (off by default): positions and velocities of the actuated joints (quadruped:
  of every joint but the free root).
- **Masks**: ``agent`` (every body of walker, cheetah, hopper, quadruped), ``cart`` and ``pole``,
  ``cup`` and ``ball``, ``finger`` and ``spinner``, ``arm`` and ``target``; the default is all
  of the task's groups.
- **Shifts** as DMC-GB applies them: colour entries set the skybox texture's ``rgb1``, the grid
  floor's two checker colours and the ``self`` material, rebuilt from dm_control's own texture
  definitions; ``video_easy`` replaces the sky, ``video_hard`` the sky and the grid floor (by
  segmentation, where DMC-GB keys out a green screen), each clip stretched to the frame and
  started at its first frame, without moving lights (``task.video_defaults``); ``distractor``
  has no room in these scenes and is refused.

Seeding: ``reset(seed)`` re-seeds the task's random state, so the initial state (and every frame
under any shift) is a function of the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import numpy as np

from vfmbench.tasks._registry import TaskSpec, get_task_spec, register_task
from vfmbench.tasks.base import Observation, StepResult, Task, TaskConfig, checked_action
from vfmbench.tasks.shifts import SceneLayout, ShiftedRenderer, make_shift
from vfmbench.tasks.shifts.base import KeepOut
from vfmbench.utils.errors import ConfigError, NoExpertError
from vfmbench.utils.imports import require
from vfmbench.utils.rendering import ensure_rendering

DEFAULT_ACTION_REPEAT = 2
# What DMC-GB's video settings do that the generic video shift leaves as options.
VIDEO_DEFAULTS = {"fit": "stretch", "random_start": False, "light_motion": 0.0, "cut_every": 0, "speed": 1.0}


@dataclass(frozen=True)
class _Domain:
    """Per-domain set-up: camera id, mask groups (name -> body or geom names)."""

    camera: int
    mask_groups: dict[str, tuple[str, ...]]


_DOMAINS = {
    "walker": _Domain(0, {"agent": ("torso", "right_thigh", "right_leg", "right_foot", "left_thigh", "left_leg",
                                    "left_foot")}),
    "cheetah": _Domain(0, {"agent": ("torso", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")}),
    "hopper": _Domain(0, {"agent": ("torso", "pelvis", "thigh", "calf", "foot")}),
    "quadruped": _Domain(2, {"agent": ("torso",) + tuple(
        f"{part}_{side}" for side in ("front_left", "front_right", "back_right", "back_left")
        for part in ("hip", "knee", "ankle", "toe"))}),
    "cartpole": _Domain(0, {"cart": ("cart",), "pole": ("pole_1",)}),
    "ball_in_cup": _Domain(0, {"cup": ("cup",), "ball": ("ball",)}),
    "finger": _Domain(0, {"finger": ("proximal", "distal"), "spinner": ("spinner",)}),
    "reacher": _Domain(0, {"arm": ("root", "arm", "hand", "finger"), "target": ("target",)}),
}
_SUCCESS_TASKS = {("ball_in_cup", "catch"), ("reacher", "easy")}  # sparse reward 1 means success



def _texture_recipes(assets: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The XML attributes of dm_control's ``skybox`` and ``grid`` textures (common/*.xml), which
    DMC-GB edits: texture name -> attributes."""
    recipes = {}
    for key, value in assets.items():
        if not key.endswith(".xml"):
            continue
        text = value.decode() if isinstance(value, bytes) else value
        for tex in ElementTree.fromstring(text).iter("texture"):
            if tex.get("name") in ("skybox", "grid"):
                recipes[tex.get("name")] = dict(tex.attrib)
    return recipes


class DMCTask(Task):
    """A dm_control suite task seen from its DrQ-v2 camera."""

    def __init__(self, name: str, domain: str, task: str, config: TaskConfig):
        ensure_rendering()
        require("dm_control", extra="sim")
        import mujoco
        from dm_control import suite

        self.name, self.domain, self.task_name, self.config = name, domain, task, config
        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        self._physics = self._env.physics
        model = self._physics.model.ptr
        self._model, self._data = model, self._physics.data.ptr
        self.action_repeat = config.action_repeat or DEFAULT_ACTION_REPEAT
        limit = int(round(self._env._step_limit))  # dm_control's episode length in environment steps
        full = limit // self.action_repeat
        if config.max_episode_steps is not None and config.max_episode_steps > full:
            raise ConfigError(f"max_episode_steps: {name} episodes end after {limit} environment steps "
                              f"({full} agent steps at action repeat {self.action_repeat}); got {config.max_episode_steps}")
        self.max_episode_steps = config.max_episode_steps or full
        self.action_dim = int(self._env.action_spec().shape[0])
        spec = _DOMAINS[domain]
        grid = [i for i in range(model.ngeom)
                if model.geom_matid[i] >= 0 and model.material(int(model.geom_matid[i])).name == "grid"]
        from dm_control.suite import common

        layout = SceneLayout.from_names(
            model, surface=[model.geom(i).name for i in grid],
            mask_groups={g: (parts, ()) for g, parts in spec.mask_groups.items()},
            self_parts=(), self_materials=("self",), texture_recipes=_texture_recipes(common.ASSETS),
        )
        options = dict(config.shift_options)
        if config.shift in ("video_easy", "video_hard"):
            options = {**VIDEO_DEFAULTS, **options}
        shift = make_shift(config.shift, options, model, layout, config.resolution)
        self._view = ShiftedRenderer(model, config.resolution, spec.camera, layout, shift)
        self.camera = spec.camera
        available = self._view.mask_groups
        requested = list(available) if config.mask_groups is None else config.mask_groups
        for g in requested:
            if g not in available:
                raise ConfigError(f"mask_groups: {g!r} is not a part of {name}; valid: {', '.join(available)}")
        self.mask_groups = tuple(requested)
        self.use_proprio = bool(config.proprio)
        self._proprio_qpos, self._proprio_qvel = self._proprio_indices(mujoco)
        self._success_defined = (domain, task) in _SUCCESS_TASKS
        ts = self._env.reset()
        self.state_dim = int(sum(np.asarray(v).size for v in ts.observation.values()))
        self.proprio_dim = 2 * len(self._proprio_qpos) if self.use_proprio else 0
        self._timestep = None
        self._t = 0
        self._closed = False

    def _proprio_indices(self, mujoco: Any) -> tuple[np.ndarray, np.ndarray]:
        """qpos and qvel addresses of the actuated joints (all but free roots if none is actuated)."""
        m = self._model
        joints = sorted({int(j) for j, kind in zip(m.actuator_trnid[:, 0], m.actuator_trntype)
                         if kind == mujoco.mjtTrn.mjTRN_JOINT})
        if not joints:
            joints = [j for j in range(m.njnt) if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE]
        return np.array([m.jnt_qposadr[j] for j in joints]), np.array([m.jnt_dofadr[j] for j in joints])

    # -- observations -------------------------------------------------------------------------
    def _observation(self) -> Observation:
        assert self._timestep is not None
        obs: Observation = {}
        if self.render_pixels and self.config.masks:
            obs["pixels"], obs["mask"] = self._view.render_with_mask(self._data, self.mask_groups, self._t)
        elif self.render_pixels:
            obs["pixels"] = self._view.render(self._data, self._t)
        obs["state"] = np.concatenate(
            [np.asarray(v, np.float32).reshape(-1) for v in self._timestep.observation.values()])
        if self.use_proprio:
            obs["proprio"] = np.concatenate([self._data.qpos[self._proprio_qpos],
                                             self._data.qvel[self._proprio_qvel]]).astype(np.float32)
        else:
            obs["proprio"] = np.zeros(0, np.float32)
        return obs

    def render(self) -> np.ndarray:
        return self._view.render(self._data, self._t)

    def mask(self, groups: Sequence[str] | None = None) -> np.ndarray:
        return self._view.mask(self._data, self.mask_groups if groups is None else groups, self._t)

    # -- episode ------------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        self._env.task._random = np.random.RandomState(int(seed))
        self._timestep = self._env.reset()
        self._t = 0
        self._view.reset(int(seed), KeepOut(np.zeros((0, 2, 3)), np.zeros(0)))
        return self._observation()

    def step(self, action: np.ndarray) -> StepResult:
        if self._timestep is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        if self._timestep.last():
            raise RuntimeError(f"{self.name}: the episode has ended; call reset()")
        a = checked_action(self, action)
        reward, success = 0.0, False
        for _ in range(self.action_repeat):
            self._timestep = self._env.step(a)
            r = float(self._timestep.reward or 0.0)
            reward += r
            success = success or (self._success_defined and r >= 1.0)
            if self._timestep.last():
                break
        self._t += 1
        done = self._t >= self.max_episode_steps or self._timestep.last()
        return StepResult(self._observation(), reward, success, done, {})

    def expert_action(self) -> np.ndarray:
        raise NoExpertError(f"{self.name} has no scripted expert; {get_task_spec(self.name).expert_hint}")

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        import mujoco

        return {
            "task": self.name,
            "family": "dmc",
            "domain": self.domain,
            "dmc_task": self.task_name,
            "resolution": self.config.resolution,
            "camera": self.camera,
            "action_repeat": self.action_repeat,
            "goal_conditioned": False,
            "proprio": self.use_proprio,
            "max_episode_steps": self.max_episode_steps,
            "reward": get_task_spec(self.name).reward,
            "shift": self._view.shift.describe(),
            "mask_groups": list(self.mask_groups),
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
            "proprio_dim": self.proprio_dim,
            "versions": {"mujoco": mujoco.__version__, "dm_control": version("dm_control")},
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._view.close()


def _factory(name: str, domain: str, task: str):
    def make(config: TaskConfig) -> Task:
        if config.goal_conditioned:
            raise ConfigError(f"{name} has no goal images (goal_conditioned=false)")
        if config.reward is not None:
            raise ConfigError(f"task_config.reward: {name} has one reward, dm_control's; remove the key")
        return DMCTask(name, domain, task, config)

    return make


for _domain, _task, _adim, _reward, _desc in [
    ("walker", "walk", 6, "dense", "planar walker: walk forward at a target speed"),
    ("walker", "stand", 6, "dense", "planar walker: stand upright at a minimum height"),
    ("cartpole", "swingup", 1, "dense", "swing a pole up from hanging and balance it"),
    ("cartpole", "balance", 1, "dense", "keep a nearly upright pole balanced (cheap, for tests)"),
    ("cheetah", "run", 6, "dense", "planar cheetah: run forward fast"),
    ("hopper", "stand", 4, "dense", "one-legged hopper: stand upright"),
    ("finger", "spin", 2, "sparse", "planar finger: spin a hinged body (reward 1 while it spins fast)"),
    ("ball_in_cup", "catch", 2, "sparse", "swing a tethered ball into a cup"),
    ("quadruped", "walk", 12, "dense", "four-legged walker: walk forward"),
    ("reacher", "easy", 2, "sparse", "two-link arm: reach a large target (cheap, for tests)"),
]:
    register_task(
        TaskSpec(
            name=f"dmc_{_domain}_{_task}",
            family="dmc",
            description=_desc,
            factory=_factory(f"dmc_{_domain}_{_task}", _domain, _task),
            action_dim=_adim,
            max_episode_steps=1000 // DEFAULT_ACTION_REPEAT,
            default_proprio=False,
            supports_goal=False,
            reward=_reward,
            success=(_domain, _task) in _SUCCESS_TASKS,
            expert=False,
            expert_hint=(f"train a state agent (vfmbench rl train --task dmc_{_domain}_{_task} --agent drqv2 "
                         "--encoder state --out RUN) and collect with it: vfmbench collect --expert RUN"),
            mask_groups=tuple(_DOMAINS[_domain].mask_groups),
            shifts=("none", "color_easy", "color_hard", "video_easy", "video_hard"),
            shift_note="distractors need a table top to stand on, and these scenes have none",
        )
    )
