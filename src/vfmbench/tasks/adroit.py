"""Adroit pixel tasks (gymnasium-robotics 1.4.2 ``AdroitHand*-v1``): adroit_door, adroit_hammer, adroit_pen.

The settings follow RL-ViGen's Adroit benchmark, which paper 002 (SAM-G) uses for its Adroit
results, and VRL3, whose Adroit wrapper RL-ViGen reuses:

- **Camera.** RL-ViGen and VRL3 render door and hammer from a camera ``top`` looking straight
  down (``pos="0 0 1.5"`` for door, ``"0 0 1.1"`` for hammer, ``euler="0 0 3.14"``: the arm
  enters from the top of the image) and pen from the model's ``vil_camera``
  (``pos="0 -1.2 1.2"``, tilted 45 degrees down). gymnasium-robotics' models lack ``top``, so
  all three are free cameras with the same pose and MuJoCo's default 45-degree field of view:
  door ``lookat (0, 0, 0)``, distance 1.5, azimuth 269.91 (``3.14 rad + 90`` degrees), elevation
  -90; hammer the same at distance 1.1; pen ``lookat (0, 0, 0)``, distance ``1.2 * sqrt 2``,
  azimuth 90, elevation -45. ``tests/test_adroit.py`` checks that they render what ``top`` and
  ``vil_camera`` render. 84x84 pixels by default (paper 002 Table 6 uses
  160x160 for pen: ``TaskConfig.resolution``).
- **Action repeat 2** (paper 002 Table 6, VRL3 ``action_repeat: 2``): one agent step is two
  environment steps (each 5 MuJoCo steps of 2 ms), with the same action; rewards are summed.
- **Episode length.** Paper 002 Table 6 gives 200 (door, hammer) and 100 (pen). These are
  environment steps: they are the time limits mj_envs registers for ``door-v0``/``hammer-v0``
  (200) and ``pen-v0`` (100), which VRL3's and RL-ViGen's action-repeat loop counts underneath
  (VRL3 logs ``episode_length = agent steps * action_repeat``), as Table 6 counts DMControl's
  1000 environment steps. Episodes therefore last 100 agent steps (door, hammer) and 50 (pen).
- **Reward**: the environment's dense reward (D4RL's). gymnasium-robotics 1.4.2 warns that the
  ``v1`` dense rewards of door, hammer and relocate changed in 1.2.1: that refactor flipped the
  sign of the hand-to-object term (``+0.1 * distance`` instead of D4RL's ``-0.1 * distance``,
  rewarding the hand for moving away), fixed in gymnasium-robotics PR #220 and released as
  ``v2`` in 1.4.3. The tasks add ``-0.2 * distance`` (palm to door handle, palm to hammer) to
  each environment step's reward, which gives D4RL's and ``v2``'s reward exactly; pen is
  unaffected. ``TaskConfig.reward`` (Fetch's sparse/dense switch) does not apply: the sparse
  variant is ``10 if success else -0.1`` and follows from ``success``.
- **Success** is the environment's ``info["success"]`` at the current step (door opened past
  1.35 rad, nail within 1 cm of its goal, pen within 7.5 cm and 0.95 orientation similarity).
  VRL3 and RL-ViGen count an *episode* a success when more than 25 (door, hammer) or 20 (pen)
  environment steps succeed; `docs/adroit.md` says how to compute that from the steps.
- **State**: the environment's observation vector (39, 46 and 45 numbers), float32.
  **Proprioception** (on by default, as RL-ViGen's and VRL3's ``observation_sensor``): the 24
  hand joint angles, wrist ``WRJ1``, ``WRJ0`` and the 22 finger joints ``FFJ3`` ... ``THJ0``
  (``qpos`` addresses of those joints; the arm's ``ARTz``/``ARR*`` joints are left out).
- **Expert**: none is scripted (`expert_action` raises `NoExpertError`, a ``NotImplementedError``
  the CLI reports); expert data comes from D4RL through ``vfmbench import minari``.

Shifts see the ground plane below the table as backdrop (there is no skybox: what shows behind
the ground is black, labelled sky), the table as the surface and the hand as the agent (colour
shifts recolour it, not the objects); distractors stand on the table top away from the arm and
the objects. Ground-truth mask groups: ``hand`` (forearm, wrist,
palm and fingers) and the objects: door ``door`` (frame and door leaf), ``handle`` (latch and
handle); hammer ``hammer``, ``nail``, ``board`` (with its goal disc); pen ``pen`` and ``goal``
(the target pen). The default is every group of the task.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Callable

import numpy as np

from vfmbench.tasks._registry import TaskSpec, get_task_spec, register_task
from vfmbench.tasks.base import CameraConfig, Observation, StepResult, Task, TaskConfig, checked_action
from vfmbench.tasks.shifts import KeepOut, SceneLayout, ShiftedRenderer, Workspace, make_shift
from vfmbench.utils.errors import ConfigError, DatasetError, NoExpertError
from vfmbench.utils.imports import require
from vfmbench.utils.rendering import ensure_rendering

ACTION_REPEAT = 2  # environment steps per agent step (paper 002 Table 6)
_TOP_AZIMUTH = float(np.degrees(3.14)) + 90.0  # RL-ViGen's top camera: euler z = 3.14 rad
CAMERAS = {
    "door": CameraConfig(lookat=(0.0, 0.0, 0.0), distance=1.5, azimuth=_TOP_AZIMUTH, elevation=-90.0),
    "hammer": CameraConfig(lookat=(0.0, 0.0, 0.0), distance=1.1, azimuth=_TOP_AZIMUTH, elevation=-90.0),
    "pen": CameraConfig(lookat=(0.0, 0.0, 0.0), distance=1.2 * float(np.sqrt(2.0)), azimuth=90.0, elevation=-45.0),
}
ENV_IDS = {"door": "AdroitHandDoor-v1", "hammer": "AdroitHandHammer-v1", "pen": "AdroitHandPen-v1"}
# Episode lengths in environment steps (mj_envs' time limits, paper 002 Table 6).
ENV_EPISODE_STEPS = {"door": 200, "hammer": 200, "pen": 100}
HAND_JOINTS = ("WRJ1", "WRJ0",
               "FFJ3", "FFJ2", "FFJ1", "FFJ0", "MFJ3", "MFJ2", "MFJ1", "MFJ0", "RFJ3", "RFJ2", "RFJ1", "RFJ0",
               "LFJ4", "LFJ3", "LFJ2", "LFJ1", "LFJ0", "THJ4", "THJ3", "THJ2", "THJ1", "THJ0")
# Object mask groups per variant: (body or geom names, site names); "hand" is added from the model.
_OBJECT_GROUPS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "door": {"door": (("frame", "door"), ()), "handle": (("latch",), ())},
    "hammer": {"hammer": (("Object",), ()), "nail": (("nail",), ()), "board": (("nail_board",), ("nail_goal",))},
    "pen": {"pen": (("Object",), ()), "goal": (("target", "t_top", "t_bot", "t_cli"), ())},  # geoms: "target" also names a geom
}
_TABLE_MARGIN = 0.03  # distractors keep this far (m) inside the table's edges
_HAND_RADIUS, _OBJECT_RADIUS = 0.12, 0.1  # keep-out radii (m) around the arm and the objects



def env_classes() -> dict[str, Any]:
    """The gymnasium-robotics Adroit environment classes by variant (importing them registers
    the ``AdroitHand*`` ids with gymnasium)."""
    require("mujoco", extra="sim")
    require("gymnasium", extra="sim")
    # gymnasium_robotics prints its v1 reward notice on import; the reward is handled here (module docstring)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        require("gymnasium_robotics", extra="sim")
        from gymnasium_robotics.envs.adroit_hand import AdroitHandDoorEnv, AdroitHandHammerEnv, AdroitHandPenEnv
    return {"door": AdroitHandDoorEnv, "hammer": AdroitHandHammerEnv, "pen": AdroitHandPenEnv}


class AdroitTask(Task):
    """An Adroit hand environment rendered from a fixed camera, stepped with action repeat 2."""

    def __init__(self, name: str, variant: str, config: TaskConfig):
        ensure_rendering()
        import mujoco

        if config.goal_conditioned:
            raise ConfigError(f"{name} has no goal images (its goal is part of the scene); set goal_conditioned=false")
        self._mujoco = mujoco
        self.name = name
        self.variant = variant
        self.config = config
        self._env = env_classes()[variant](reward_type="dense")
        self._model, self._data = self._env.model, self._env.data
        self.camera = config.camera or CAMERAS[variant]
        obs, _ = self._env.reset(seed=0)
        self._hand_bodies = self._subtree("forearm")
        # Rendering cost (software GL): the models ask for a 3024x1680 offscreen buffer (the renderer
        # makes it the frame's size: same pixels) and a 4096^2 shadow map. A shadow map of 8 texels
        # per pixel (at 84x84: 1024^2, mean pixel difference 0.3/255): 140 -> 50 ms a frame in all.
        vis = self._model.vis
        vis.quality.shadowsize = min(int(vis.quality.shadowsize), max(1024, 8 * config.resolution))
        layout = self._layout()
        shift = make_shift(config.shift, config.shift_options, self._model, layout, config.resolution)
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = self.camera.lookat
        cam.distance = self.camera.distance
        cam.azimuth = self.camera.azimuth
        cam.elevation = self.camera.elevation
        self._view = ShiftedRenderer(self._model, config.resolution, cam, layout, shift)
        self.mask_groups = self._mask_groups(config.mask_groups)
        self.use_proprio = True if config.proprio is None else config.proprio
        self._proprio_adr = np.array([self._model.jnt_qposadr[self._model.joint(j).id] for j in HAND_JOINTS])
        self.action_dim = int(self._model.nu)
        self.action_repeat = ACTION_REPEAT
        self.max_episode_steps = config.max_episode_steps or ENV_EPISODE_STEPS[variant] // ACTION_REPEAT
        self.state_dim = int(obs.shape[0])
        self.proprio_dim = len(HAND_JOINTS) if self.use_proprio else 0
        self._reward_fix = self._hand_to_object_fix()
        self._obs: np.ndarray | None = None
        self._t = 0
        self._closed = False

    # -- scene ----------------------------------------------------------------------------
    def _subtree(self, root: str) -> tuple[str, ...]:
        """Names of body `root` and all bodies below it."""
        m = self._model
        top = m.body(root).id
        names = []
        for b in range(m.nbody):
            i = b
            while i not in (0, top):
                i = int(m.body_parentid[i])
            if i == top:
                names.append(m.body(b).name)
        return tuple(names)

    def _layout(self) -> SceneLayout:
        """Ground as backdrop, table as surface, its top as the distractors' workspace, the hand as
        the agent that colour shifts recolour (DMC-GB's ``self``)."""
        self._mujoco.mj_forward(self._model, self._data)
        m = self._model
        top = int(np.flatnonzero(m.geom_bodyid == m.body("table").id)[0])  # the table-top box
        centre, half = self._data.geom_xpos[top], m.geom_size[top]
        inner = half[:2] - _TABLE_MARGIN
        workspace = Workspace(
            low=(float(centre[0] - inner[0]), float(centre[1] - inner[1])),
            high=(float(centre[0] + inner[0]), float(centre[1] + inner[1])),
            z=float(centre[2] + half[2]),
        )
        groups = {"hand": (self._hand_bodies, ()), **_OBJECT_GROUPS[self.variant]}
        return SceneLayout.from_names(m, backdrop=("ground",), surface=("table",), mask_groups=groups,
                                      workspace=workspace, self_parts=self._hand_bodies)

    def _mask_groups(self, requested: Sequence[str] | None) -> tuple[str, ...]:
        available = self._view.mask_groups
        if requested is None:
            return tuple(available)
        for g in requested:
            if g not in available:
                raise ConfigError(f"mask_groups: {g!r} is not a part of {self.name}; valid: {', '.join(available)}")
        return tuple(requested)

    def _keep_out(self) -> KeepOut:
        """Where distractors may not stand at reset: under the arm (forearm to palm) and around
        the objects (the whole door leaf; the hammer, nail board and pen and its target)."""
        d, m = self._data, self._model
        palm = d.site_xpos[m.site("S_grasp").id]
        segments = [[d.xpos[m.body("forearm").id], palm]]
        if self.variant == "door":
            frame = np.flatnonzero(m.geom_bodyid == m.body("frame").id)
            segments.append([d.geom_xpos[frame[0]], d.geom_xpos[frame[1]]])
        else:
            objects = ("Object", "nail_board") if self.variant == "hammer" else ("Object", "target")
            segments += [[d.xpos[m.body(b).id]] * 2 for b in objects]
        radius = [_HAND_RADIUS] + [_OBJECT_RADIUS] * (len(segments) - 1)
        return KeepOut(np.array(segments, dtype=np.float64), np.array(radius))

    def _hand_to_object_fix(self) -> Callable[[], float]:
        """The term that turns gymnasium-robotics 1.4.2's v1 dense reward into D4RL's (module
        docstring): ``-0.2 * |palm - handle|`` (door), ``-0.2 * |palm - hammer|`` (hammer), 0 (pen)."""
        d, m = self._data, self._model
        palm = m.site("S_grasp").id
        if self.variant == "door":
            handle = m.site("S_handle").id
            return lambda: -0.2 * float(np.linalg.norm(d.site_xpos[palm] - d.site_xpos[handle]))
        if self.variant == "hammer":
            hammer = m.body("Object").id
            return lambda: -0.2 * float(np.linalg.norm(d.site_xpos[palm] - d.xpos[hammer]))
        return lambda: 0.0

    # -- observations ---------------------------------------------------------------------
    def _observation(self) -> Observation:
        assert self._obs is not None
        frame: Observation = {}
        if self.render_pixels and self.config.masks:
            pixels, mask = self._view.render_with_mask(self._data, self.mask_groups, self._t)
            frame = {"pixels": pixels, "mask": mask}
        elif self.render_pixels:
            frame = {"pixels": self._view.render(self._data, self._t)}
        proprio = self._data.qpos[self._proprio_adr] if self.use_proprio else np.zeros(0)
        return {**frame, "state": self._obs.astype(np.float32), "proprio": proprio.astype(np.float32)}

    def render(self) -> np.ndarray:
        return self._view.render(self._data, self._t)

    def mask(self, groups: Sequence[str] | None = None) -> np.ndarray:
        return self._view.mask(self._data, self.mask_groups if groups is None else groups, self._t)

    # -- episode --------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        self._obs, _ = self._env.reset(seed=int(seed))
        self._t = 0
        self._view.reset(int(seed), self._keep_out())
        return self._observation()

    def env_step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """One environment step without action repeat (5 MuJoCo steps of 2 ms) of an action
        ``[A]`` (the environment clips it to [-1, 1]): the environment's observation vector
        (float64 ``[S]``), its reward (D4RL's dense reward) and success. Nothing is rendered:
        `observe` gives the observation afterwards (`step` and the Minari importer use both)."""
        obs, reward, _, _, info = self._env.step(action)
        return obs, float(reward) + self._reward_fix(), bool(info["success"])

    def step(self, action: np.ndarray) -> StepResult:
        if self._obs is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        a = checked_action(self, action)
        reward, success = 0.0, False
        for _ in range(self.action_repeat):
            _, r, success = self.env_step(a)
            reward += r
        return StepResult(self.observe(self._t + 1), reward, success, self._t >= self.max_episode_steps, {})

    def set_env_state(self, state: dict[str, np.ndarray], t: int = 0) -> Observation:
        """Put the simulator in a recorded state and observe it as frame `t` of the episode.

        `state` holds the environment's ``get_env_state`` keys: ``qpos`` and ``qvel`` (float
        ``[nq]``, ``[nv]``) and the episode's randomised pose (door ``door_body_pos`` [3],
        hammer ``board_pos`` [3], pen ``desired_orien`` [4], a quaternion). A missing or
        misshapen entry is a `DatasetError` naming it.
        """
        expected = {k: space.shape for k, space in self._env._state_space.spaces.items()}
        clean = {}
        for key, shape in expected.items():
            if key not in state:
                raise DatasetError(f"{self.name}: the recorded state lacks {key!r} (it has {sorted(state)}); "
                                   f"{ENV_IDS[self.variant]} needs {sorted(expected)}")
            value = np.asarray(state[key], dtype=np.float64)
            if value.shape != shape:
                raise DatasetError(f"{self.name}: the recorded state's {key!r} has shape {value.shape}, "
                                   f"{ENV_IDS[self.variant]} needs {shape}")
            clean[key] = value
        self._env.set_env_state(clean)
        self._obs = self._env._get_obs()
        self._t = int(t)
        return self._observation()

    def observe(self, t: int) -> Observation:
        """The observation of the current simulator state as frame `t` of the episode (after
        `env_step` calls)."""
        self._obs = self._env._get_obs()
        self._t = int(t)
        return self._observation()

    def expert_action(self) -> np.ndarray:
        raise NoExpertError(f"{self.name} has no scripted expert; {get_task_spec(self.name).expert_hint}")

    def describe(self) -> dict[str, Any]:
        import gymnasium_robotics
        import mujoco

        return {
            "task": self.name,
            "family": "adroit",
            "env_id": ENV_IDS[self.variant],
            "env_class": type(self._env).__name__,
            "resolution": self.config.resolution,
            "camera": asdict(self.camera),
            "goal_conditioned": False,
            "proprio": self.use_proprio,
            "proprio_joints": list(HAND_JOINTS) if self.use_proprio else [],
            "action_repeat": self.action_repeat,
            "max_episode_steps": self.max_episode_steps,
            "reward": "dense (D4RL; v1 hand-to-object sign fixed as in gymnasium-robotics v2)",
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


def _factory(name: str, variant: str):
    def make(config: TaskConfig) -> Task:
        return AdroitTask(name, variant, config)

    return make


for _variant, _actions, _groups, _desc in [
    ("door", 28, ("hand", "door", "handle"), "undo the latch and swing the door open (Adroit hand, 28-D)"),
    ("hammer", 26, ("hand", "hammer", "nail", "board"), "pick up the hammer and drive the nail into the board"),
    ("pen", 24, ("hand", "pen", "goal"), "turn the pen in the hand to the target pen's orientation"),
]:
    register_task(
        TaskSpec(
            name=f"adroit_{_variant}",
            family="adroit",
            description=_desc,
            factory=_factory(f"adroit_{_variant}", _variant),
            action_dim=_actions,
            max_episode_steps=ENV_EPISODE_STEPS[_variant] // ACTION_REPEAT,
            default_proprio=True,
            supports_goal=False,
            reward="dense",
            success=True,
            expert=False,
            expert_hint=(f"import D4RL's expert demonstrations instead: vfmbench import minari "
                         f"--dataset D4RL/{_variant}/expert-v2 --task adroit_{_variant} --out DIR"),
            mask_groups=_groups,
        )
    )
