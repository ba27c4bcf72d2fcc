"""Adroit pixel tasks: seeding under every shift, masks against MuJoCo segmentation, rewards,
success and episode lengths against gymnasium-robotics called directly, the camera, the contract."""

import numpy as np
import pytest

from vfmbench.cli import app
from vfmbench.tasks import get_task_spec, list_tasks, make_task
from vfmbench.tasks.adroit import ENV_IDS, HAND_JOINTS
from vfmbench.utils.errors import ConfigError

pytestmark = pytest.mark.sim

TASKS = ["adroit_door", "adroit_hammer", "adroit_pen"]
SHIFTS = ["none", "color_easy", "color_hard", "video_easy", "video_hard", "distractor"]


def _frames(task, seed, actions):
    obs = [task.reset(seed)] + [task.step(a).observation for a in actions]
    return np.stack([o["pixels"] for o in obs]), np.stack([o["state"] for o in obs])


@pytest.mark.parametrize("shift", SHIFTS)
def test_same_seed_same_frames_under_every_shift(shift):
    name = TASKS[SHIFTS.index(shift) % 3]  # every shift on one task, every task under two shifts
    with make_task(name, shift=shift) as task:
        actions = np.random.default_rng(1).uniform(-1, 1, (2, task.action_dim))
        pixels, states = _frames(task, 5, actions)
        again, states_again = _frames(task, 5, actions)
        other, other_states = _frames(task, 6, actions)
    np.testing.assert_array_equal(pixels, again)
    np.testing.assert_array_equal(states, states_again)
    assert pixels.shape == (3, 84, 84, 3) and pixels.dtype == np.uint8
    assert not np.array_equal(pixels[0], other[0])  # another seed: another object pose (and shift draw)
    assert not np.array_equal(states[0], other_states[0])


@pytest.mark.parametrize("name", TASKS)
def test_masks_cover_hand_and_objects_where_segmentation_says(name):
    import mujoco

    with make_task(name, masks=True) as task:
        obs = task.reset(0)
        spec = get_task_spec(name)
        assert task.mask_groups == spec.mask_groups
        mask = obs["mask"]
        assert mask.shape == (84, 84) and mask.dtype == bool
        np.testing.assert_array_equal(mask, task.mask())
        groups = {g: task.mask([g]) for g in spec.mask_groups}
        hand = groups.pop("hand")
        assert 0.01 < hand.mean() < 0.5
        for group, m in groups.items():
            assert m.sum() >= 5, f"{name}: mask group {group!r} covers only {m.sum()} pixels"
            assert not (m & hand).any()
        # independently: MuJoCo's own segmentation with the same camera; hand geoms are those of
        # bodies below the forearm (the task's low-alpha helper geoms are in hidden groups here)
        model, data = task._model, task._data
        renderer = mujoco.Renderer(model, 84, 84)
        try:
            renderer.update_scene(data, camera=task._view.camera)
            renderer.enable_segmentation_rendering()
            seg = renderer.render()
        finally:
            renderer.close()
        forearm = model.body("forearm").id
        below = np.zeros(model.nbody, bool)
        for b in range(model.nbody):
            i = b
            while i not in (0, forearm):
                i = model.body_parentid[i]
            below[b] = i == forearm
        is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
        expected = is_geom & below[model.geom_bodyid[np.where(is_geom, seg[..., 0], 0)]]
        np.testing.assert_array_equal(hand, expected)
    with pytest.raises(ConfigError, match="not a part of adroit_door; valid: hand, door, handle"):
        make_task("adroit_door", mask_groups=["goal"])


def _d4rl_fix(variant, env):
    """D4RL's hand-to-object reward term minus gymnasium-robotics 1.4.2 v1's (sign bug)."""
    d, m = env.unwrapped.data, env.unwrapped.model
    palm = d.site_xpos[m.site("S_grasp").id]
    if variant == "door":
        return -0.2 * np.linalg.norm(palm - d.site_xpos[m.site("S_handle").id])
    if variant == "hammer":
        return -0.2 * np.linalg.norm(palm - d.xpos[m.body("Object").id])
    return 0.0


@pytest.mark.parametrize("name,returns", [("adroit_door", (-62, -52)), ("adroit_hammer", (-305, -255)),
                                          ("adroit_pen", (-300, 400))])
def test_reward_success_length_match_gymnasium_robotics(name, returns):
    import gymnasium as gym

    variant = name.split("_")[1]
    seed = 3
    with make_task(name, resolution=16) as task:  # small frames: this test is about the dynamics
        env = gym.make(ENV_IDS[variant], max_episode_steps={"door": 200, "hammer": 200, "pen": 100}[variant])
        obs = task.reset(seed)
        raw, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(obs["state"], raw.astype(np.float32))
        rng = np.random.default_rng(seed)
        total, steps = 0.0, 0
        while True:
            action = rng.uniform(-1, 1, task.action_dim)
            result = task.step(action)
            reward, truncated = 0.0, False
            for _ in range(2):
                raw, r, terminated, truncated, info = env.step(action)
                reward += r + _d4rl_fix(variant, env)
            steps += 1
            total += result.reward
            assert result.reward == pytest.approx(reward, abs=1e-9)
            assert result.success == info["success"]
            np.testing.assert_array_equal(result.observation["state"], raw.astype(np.float32))
            assert result.done == truncated
            if result.done:
                break
        env.close()
    assert steps == get_task_spec(name).max_episode_steps == {"door": 100, "hammer": 100, "pen": 50}[variant]
    assert returns[0] < total < returns[1]  # door and hammer: D4RL's random scores are -56.5 and -274.9


def test_door_reward_is_d4rl_dense_reward():
    """The door reward equals D4RL's formula (hand-to-handle term negative), step by step."""
    with make_task("adroit_door", resolution=16) as task:
        task.reset(0)
        env, m, d = task._env, task._model, task._data
        hinge = m.jnt_qposadr[m.joint("door_hinge").id]
        rng = np.random.default_rng(0)
        for _ in range(5):
            _, reward, _ = task.env_step(rng.uniform(-1, 1, 28))
            dist = np.linalg.norm(d.site_xpos[m.site("S_grasp").id] - d.site_xpos[m.site("S_handle").id])
            angle = d.qpos[hinge]
            d4rl = -0.1 * dist - 0.1 * (angle - 1.57) ** 2 - 1e-5 * np.sum(d.qvel**2)
            d4rl += 2 * (angle > 0.2) + 8 * (angle > 1.0) + 10 * (angle > 1.35)
            assert reward == pytest.approx(d4rl, abs=1e-9)
            assert env is task._env


def test_pen_camera_is_vil_camera():
    import mujoco

    with make_task("adroit_pen") as task:
        frame = task.reset(0)["pixels"]
        renderer = mujoco.Renderer(task._model, 84, 84)
        try:
            renderer.update_scene(task._data, camera="vil_camera")
            named = renderer.render()
        finally:
            renderer.close()
    diff = np.abs(frame.astype(int) - named.astype(int))
    assert (diff.max(-1) > 0).mean() < 0.01 and diff.mean() < 0.5


@pytest.mark.parametrize("variant,height", [("door", 1.5), ("hammer", 1.1)])
def test_top_views_are_rl_vigen_top_camera(variant, height):
    """RL-ViGen's models add <camera name="top" pos="0 0 H" euler="0 0 3.14"/>; ours is a free camera."""
    import os

    import gymnasium_robotics
    import mujoco

    from vfmbench.tasks.adroit import CAMERAS

    xml = os.path.join(os.path.dirname(gymnasium_robotics.__file__), f"envs/assets/adroit_hand/adroit_{variant}.xml")
    spec = mujoco.MjSpec.from_file(xml)
    top = spec.worldbody.add_camera(name="top", pos=[0, 0, height])
    top.alt.type = mujoco.mjtOrientation.mjORIENTATION_EULER
    top.alt.euler = [0, 0, 3.14]
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    free = mujoco.MjvCamera()
    free.type = mujoco.mjtCamera.mjCAMERA_FREE
    c = CAMERAS[variant]
    free.lookat[:], free.distance, free.azimuth, free.elevation = c.lookat, c.distance, c.azimuth, c.elevation
    renderer = mujoco.Renderer(model, 84, 84)
    try:
        renderer.update_scene(data, camera="top")
        named = renderer.render()
        renderer.update_scene(data, camera=free)
        np.testing.assert_array_equal(renderer.render(), named)
    finally:
        renderer.close()


def test_contract_state_proprio_describe_and_no_expert(tmp_path, capsys):
    assert {"adroit_door", "adroit_hammer", "adroit_pen"} <= set(list_tasks())
    spec = get_task_spec("adroit_hammer")
    assert (spec.family, spec.action_dim, spec.expert, spec.success, spec.reward, spec.supports_goal) == (
        "adroit", 26, False, True, "dense", False)
    with make_task("adroit_hammer") as task:
        obs = task.reset(0)
        assert obs["state"].shape == (46,) and obs["state"].dtype == np.float32
        adr = [task._model.jnt_qposadr[task._model.joint(j).id] for j in HAND_JOINTS]
        np.testing.assert_array_equal(obs["proprio"], task._data.qpos[adr].astype(np.float32))
        np.testing.assert_array_equal(obs["proprio"], obs["state"][2:26])  # hammer obs: qpos[:-6], arm first
        assert task.spaces.proprio_dim == 24 and task.spaces.action_dim == 26
        info = task.describe()
        assert info["action_repeat"] == 2 and info["max_episode_steps"] == 100 and info["env_id"] == "AdroitHandHammer-v1"
        assert info["camera"]["distance"] == 1.1 and info["camera"]["elevation"] == -90.0
        with pytest.raises(NotImplementedError, match="vfmbench import minari --dataset D4RL/hammer/expert-v2"):
            task.expert_action()
    assert app(["collect", "--task", "adroit_door", "--episodes", "1", "--out", str(tmp_path / "d"),
                "--no-progress"]) == 2
    assert "adroit_door has no scripted expert" in capsys.readouterr().err and not (tmp_path / "d").exists()
    with make_task("adroit_pen", proprio=False) as task:
        assert task.reset(0)["proprio"].shape == (0,) and task.spaces.proprio_dim == 0
    with pytest.raises(ConfigError, match="no goal images"):
        make_task("adroit_door", goal_conditioned=True)
