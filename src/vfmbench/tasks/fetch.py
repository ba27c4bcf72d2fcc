"""Fetch pixel tasks (gymnasium-robotics assets): fetch_reach, fetch_push, fetch_pick_and_place.

The default camera faces the robot across the table (azimuth 180, elevation -55, 0.85 m from
the centre of the work area), so the arm stays behind the block (5 cm, about 6 pixels at
84x84), the red goal marker and the gripper, which are all visible. Proprioception is
gripper position, finger state and their velocities (10 numbers); following paper 000 (§5.2)
it is given to the policy for pick-and-place (and reach, which the paper does not use) by
default. fetch_reach draws a thin pole from the table to its goal, visual only: from one camera
a sphere in the air is ambiguous in depth, and pixel policies could not solve the task. Privileged state is the
environment's observation vector plus the desired goal. Success is the environment's
``is_success`` at the current step; episodes last 50 steps. The reward is the environment's:
sparse (0 at the goal, -1 elsewhere) by default, or dense (minus the distance to the goal) with
``TaskConfig.reward = "dense"``.

Shifts (``TaskConfig.shift``) see the floor below the table as backdrop and the table as the
surface; distractors stand on the table top. DMC-GB colour entries map to Fetch's parts as:
``skybox_rgb`` the sky and the floor, ``grid_rgb1``/``grid_rgb2`` the table, ``self_rgb`` the
robot (the block and the goal keep their colours). Ground-truth mask groups: ``object``, ``gripper``
(gripper link and fingers), ``arm`` (shoulder to wrist) and ``goal`` (the goal marker site, with
reach's pole); the default is object, gripper and goal.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from vfmbench.tasks._registry import TaskSpec, register_task
from vfmbench.tasks.base import CameraConfig, Observation, StepResult, Task, TaskConfig, checked_action
from vfmbench.tasks.experts.fetch import pick_and_place_expert, push_expert, reach_expert
from vfmbench.tasks.shifts import KeepOut, SceneLayout, ShiftedRenderer, Workspace, make_shift
from vfmbench.utils.errors import ConfigError
from vfmbench.utils.imports import require
from vfmbench.utils.rendering import ensure_rendering

FETCH_CAMERA = CameraConfig(lookat=(1.34, 0.75, 0.45), distance=0.85, azimuth=180.0, elevation=-55.0)
# Indices of proprioceptive entries in the Fetch observation vector (object tasks):
# grip_pos 0:3, gripper_state 9:11, grip_velp 20:23, gripper_vel 23:25.
_PROPRIO_OBJECT = np.r_[0:3, 9:11, 20:23, 23:25]
_PROPRIO_REACH = np.arange(10)  # reach observation is only the gripper
_TABLE_TOP = 0.4  # z of the table surface in the Fetch scenes
# Ground-truth mask groups: (geom or body names, site names); groups missing from a
# variant's model (the object in reach) are dropped.
_MASK_GROUPS = {
    "object": (("object0",), ()),
    "gripper": (("robot0:gripper_link", "robot0:r_gripper_finger_link", "robot0:l_gripper_finger_link"), ()),
    "arm": (
        tuple(
            f"robot0:{link}_link"
            for link in ("shoulder_pan", "shoulder_lift", "upperarm_roll", "elbow_flex", "forearm_roll",
                         "wrist_flex", "wrist_roll")
        ),
        (),
    ),
    "goal": ((), ("target0",)),
}
_DEFAULT_MASK_GROUPS = ("object", "gripper", "goal")
_TABLE_MARGIN = 0.03  # distractors keep this far (m) inside the table's edges
# Keep-out radii (m) for distractors at reset: around the block, the goal, the gripper's path.
_OBJECT_RADIUS, _GRIPPER_RADIUS = 0.04, 0.05




def _import_fetch_classes() -> dict[str, Any]:
    require("mujoco", extra="sim")
    require("gymnasium", extra="sim")
    # gymnasium_robotics prints an unrelated Adroit notice on import; keep the console clean.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        require("gymnasium_robotics", extra="sim")
        from gymnasium_robotics.envs.fetch.pick_and_place import MujocoFetchPickAndPlaceEnv
        from gymnasium_robotics.envs.fetch.push import MujocoFetchPushEnv
        from gymnasium_robotics.envs.fetch.reach import MujocoFetchReachEnv
    return {
        "reach": MujocoFetchReachEnv,
        "push": MujocoFetchPushEnv,
        "pick_and_place": MujocoFetchPickAndPlaceEnv,
    }


class FetchTask(Task):
    """A Fetch environment rendered from a fixed camera."""

    def __init__(self, name: str, variant: str, config: TaskConfig, expert: Any, default_proprio: bool):
        ensure_rendering()
        import mujoco

        self._mujoco = mujoco
        self.name = name
        self.variant = variant
        self.config = config
        self._expert = expert
        if config.action_repeat not in (None, 1):
            raise ConfigError(f"action_repeat: {name} applies each action once (50 steps solve it); got {config.action_repeat}")
        self.reward_type = config.reward or "sparse"
        self._env = _import_fetch_classes()[variant](reward_type=self.reward_type)
        self._model, self._data = self._env.model, self._env.data
        self.camera = config.camera or FETCH_CAMERA
        self.goal_pole = variant == "reach"  # goals in the air: draw a pole down to the table
        obs, _ = self._env.reset(seed=0)  # sizes are only known once a goal is sampled
        layout = self._layout()
        shift = make_shift(config.shift, config.shift_options, self._model, layout, config.resolution)
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._cam.lookat[:] = self.camera.lookat
        self._cam.distance = self.camera.distance
        self._cam.azimuth = self.camera.azimuth
        self._cam.elevation = self.camera.elevation
        self._view = ShiftedRenderer(self._model, config.resolution, self._cam, layout, shift,
                                     decorate=self._decorate_scene)
        self.mask_groups = self._mask_groups(config.mask_groups)
        self.use_proprio = default_proprio if config.proprio is None else config.proprio
        self._proprio_idx = _PROPRIO_REACH if variant == "reach" else _PROPRIO_OBJECT
        self.action_dim = 4
        self.max_episode_steps = config.max_episode_steps or 50
        self._raw: dict[str, np.ndarray] | None = None
        self._t = 0
        self._goal_obs: Observation | None = None
        self._closed = False
        self.state_dim = obs["observation"].shape[0] + obs["desired_goal"].shape[0]
        self.proprio_dim = len(self._proprio_idx) if self.use_proprio else 0

    def _layout(self) -> SceneLayout:
        """The Fetch scene for shifts and masks: floor as backdrop, table as surface and workspace."""
        self._mujoco.mj_forward(self._model, self._data)
        geom = int(np.flatnonzero(self._model.geom_bodyid == self._model.body("table0").id)[0])
        centre, half = self._data.geom_xpos[geom], self._model.geom_size[geom]
        inner = half[:2] - _TABLE_MARGIN
        workspace = Workspace(
            low=(float(centre[0] - inner[0]), float(centre[1] - inner[1])),
            high=(float(centre[0] + inner[0]), float(centre[1] + inner[1])),
            z=float(centre[2] + half[2]),
        )
        robot = [self._model.body(i).name for i in range(self._model.nbody)
                 if self._model.body(i).name.startswith("robot0:")]
        return SceneLayout.from_names(
            self._model, backdrop=("floor0",), surface=("table0",), mask_groups=_MASK_GROUPS,
            workspace=workspace, self_parts=robot,
        )

    def _mask_groups(self, requested: Sequence[str] | None) -> tuple[str, ...]:
        available = self._view.mask_groups
        if requested is None:
            return tuple(g for g in _DEFAULT_MASK_GROUPS if g in available)
        for g in requested:
            if g not in available:
                raise ConfigError(f"mask_groups: {g!r} is not a part of {self.name}; valid: {', '.join(available)}")
        return tuple(requested)

    def _keep_out(self) -> KeepOut:
        """Where distractors may not stand at reset: the block, the goal, the gripper's path to them
        and the strip under the arm (which would hide a distractor from the camera)."""
        assert self._raw is not None
        grip, goal = self._raw["observation"][:3], self._raw["desired_goal"]
        under_arm = [grip, grip - np.array([1.0, 0.0, 0.0])]  # the arm reaches in from the robot at -x
        if self.variant == "reach":
            return KeepOut(np.array([[grip, goal], under_arm]), np.array([_GRIPPER_RADIUS, _GRIPPER_RADIUS]))
        obj = self._raw["observation"][3:6]
        segments = np.array([[obj, obj], [goal, goal], [grip, obj], [obj, goal], under_arm])
        radius = [_OBJECT_RADIUS, _OBJECT_RADIUS, _GRIPPER_RADIUS, _OBJECT_RADIUS, _GRIPPER_RADIUS]
        return KeepOut(segments, np.array(radius))

    # -- observations -------------------------------------------------------------------
    def _state(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([raw["observation"], raw["desired_goal"]]).astype(np.float32)

    def _frame(self) -> Observation:
        """``pixels`` of the current state, and its ``mask`` when the config asks for masks
        (nothing when `render_pixels` is off)."""
        if not self.render_pixels:
            return {}
        self._env._render_callback()  # moves the goal marker to the goal
        if self.config.masks:
            pixels, mask = self._view.render_with_mask(self._data, self.mask_groups, self._t)
            return {"pixels": pixels, "mask": mask}
        return {"pixels": self._view.render(self._data, self._t)}

    def _observation(self) -> Observation:
        assert self._raw is not None
        obs: Observation = {
            **self._frame(),
            "state": self._state(self._raw),
            "proprio": self._raw["observation"][self._proprio_idx].astype(np.float32)
            if self.use_proprio
            else np.zeros(0, np.float32),
        }
        if self.config.goal_conditioned:
            assert self._goal_obs is not None
            obs["goal_state"] = self._goal_obs["state"]
            if "pixels" in self._goal_obs:
                obs["goal_pixels"] = self._goal_obs["pixels"]
            if "mask" in self._goal_obs:
                obs["goal_mask"] = self._goal_obs["mask"]
        return obs

    def render(self) -> np.ndarray:
        self._env._render_callback()  # moves the goal marker to the goal
        return self._view.render(self._data, self._t)

    def mask(self, groups: Sequence[str] | None = None) -> np.ndarray:
        self._env._render_callback()
        return self._view.mask(self._data, self.mask_groups if groups is None else groups, self._t)

    def _decorate_scene(self, scene: Any) -> None:
        """The task's own visual-only geoms, added after every scene update: reach's goal pole
        (a hook: tasks built on this class draw their own scene objects here)."""
        if self.goal_pole:
            self._add_goal_pole(scene)

    def _add_goal_pole(self, scene: Any) -> None:
        """A thin pole from the table up to the goal and a disc at its foot (visual only), so a
        goal in the air has an unambiguous 3-D position in a single image."""
        mj = self._mujoco
        goal = np.asarray(self._env.goal, dtype=np.float64)
        if scene.ngeom + 2 > scene.maxgeom or goal[2] <= _TABLE_TOP + 0.01:
            return
        foot = np.array([goal[0], goal[1], _TABLE_TOP + 0.001])
        rgba = np.array([0.9, 0.15, 0.15, 1.0], np.float32)
        pole = scene.geoms[scene.ngeom]
        mj.mjv_initGeom(pole, mj.mjtGeom.mjGEOM_CAPSULE, np.zeros(3), np.zeros(3), np.zeros(9), rgba)
        mj.mjv_connector(pole, mj.mjtGeom.mjGEOM_CAPSULE, 0.006, foot, goal)
        disc = scene.geoms[scene.ngeom + 1]
        mj.mjv_initGeom(disc, mj.mjtGeom.mjGEOM_CYLINDER, np.array([0.02, 0.02, 0.001]), foot,
                        np.eye(3).ravel(), rgba)
        for geom in (pole, disc):  # part of the goal marker in segmentation and masks
            geom.objtype, geom.objid = mj.mjtObj.mjOBJ_SITE, self._model.site("target0").id
        scene.ngeom += 2

    # -- episode --------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        self._raw = self._reset_env(int(seed))
        self._t = 0
        self._view.reset(int(seed), self._keep_out())
        if self.config.goal_conditioned:
            self._goal_obs = self._expert_goal()
        return self._observation()

    def _reset_env(self, seed: int) -> dict[str, np.ndarray]:
        """Reset the environment for the episode of `seed` and return its first raw observation
        (a hook: tasks built on this class set up the rest of their scene here)."""
        raw, _ = self._env.reset(seed=seed)
        return raw

    def step(self, action: np.ndarray) -> StepResult:
        if self._raw is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        self._raw, reward, _, _, info = self._env.step(checked_action(self, action))
        self._t += 1
        success = bool(info["is_success"])
        return StepResult(self._observation(), float(reward), success, self._t >= self.max_episode_steps, {})

    def is_success(self) -> bool:
        assert self._raw is not None
        return bool(self._env._is_success(self._raw["achieved_goal"], self._raw["desired_goal"]))

    def expert_action(self) -> np.ndarray:
        assert self._raw is not None
        return self._expert(self._raw).astype(np.float32)

    def _expert_goal(self) -> Observation:
        """The goal image: the scene after the expert solves the episode from here (paper 000 §5.1)."""
        mj = self._mujoco
        spec = mj.mjtState.mjSTATE_INTEGRATION
        saved = np.empty(mj.mj_stateSize(self._model, spec))
        mj.mj_getState(self._model, self._data, saved, spec)
        raw = self._raw
        assert raw is not None
        for _ in range(self.max_episode_steps):
            raw, _, _, _, info = self._env.step(np.clip(self._expert(raw), -1, 1))
            if info["is_success"]:
                # a few more steps let the object settle where the expert leaves it
                for _ in range(3):
                    raw, *_ = self._env.step(np.clip(self._expert(raw), -1, 1))
                break
        goal = {**self._frame(), "state": self._state(raw)}
        mj.mj_setState(self._model, self._data, saved, spec)
        mj.mj_forward(self._model, self._data)
        return goal

    def describe(self) -> dict[str, Any]:
        import gymnasium_robotics
        import mujoco

        return {
            "task": self.name,
            "family": "fetch",
            "env_class": type(self._env).__name__,
            "resolution": self.config.resolution,
            "camera": asdict(self.camera),
            "goal_conditioned": self.config.goal_conditioned,
            "proprio": self.use_proprio,
            "goal_pole": self.goal_pole,
            "max_episode_steps": self.max_episode_steps,
            "reward": self.reward_type,
            "shift": self._view.shift.describe(),
            "mask_groups": list(self.mask_groups),
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
            "proprio_dim": self.proprio_dim,
            "versions": {"mujoco": mujoco.__version__, "gymnasium_robotics": gymnasium_robotics.__version__},
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._view.close()
            self._env.close()


def _factory(name: str, variant: str, expert: Any, default_proprio: bool):
    def make(config: TaskConfig) -> Task:
        return FetchTask(name, variant, config, expert, default_proprio)

    return make


for _name, _variant, _expert, _proprio, _desc in [
    ("fetch_reach", "reach", reach_expert, True, "move the gripper to a 3-D goal (no object)"),
    ("fetch_push", "push", push_expert, False, "push a block to a goal on the table (gripper closed)"),
    (
        "fetch_pick_and_place",
        "pick_and_place",
        pick_and_place_expert,
        True,
        "grasp a block and place it at a goal on the table or in the air",
    ),
]:
    register_task(
        TaskSpec(
            name=_name,
            family="fetch",
            description=_desc,
            factory=_factory(_name, _variant, _expert, _proprio),
            action_dim=4,
            max_episode_steps=50,
            default_proprio=_proprio,
            reward="sparse|dense",
            mask_groups=("gripper", "goal", "arm") if _variant == "reach" else ("object", "gripper", "goal", "arm"),
        )
    )
