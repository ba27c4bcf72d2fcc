import numpy as np
import pytest

from vfmbench.tasks import make_task

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("name", ["fetch_reach", "fetch_push", "fetch_pick_and_place"])
def test_expert_success_over_20_episodes(name):
    with make_task(name, resolution=16) as task:
        successes = []
        for seed in range(20):
            task.reset(seed)
            for _ in range(task.max_episode_steps):
                result = task.step(task.expert_action())
            successes.append(result.success)
    assert np.mean(successes) >= 0.9, successes


def test_observations_and_pixels_show_the_scene():
    with make_task("fetch_push") as task:
        obs = task.reset(0)
        assert obs["pixels"].shape == (84, 84, 3) and obs["pixels"].dtype == np.uint8
        assert obs["state"].shape == (task.state_dim,) and obs["proprio"].shape == (0,)
        # the block (about 6x6 pixels) and the goal marker are visible at reset in most episodes;
        # the gripper can hide a block just behind it until it moves
        block = [int(task.mask(("object",)).sum()) for _ in [task.reset(s) for s in range(20)]]
        assert sum(b >= 10 for b in block) >= 15, block
        task.reset(0)
        px = task.render().astype(int)
        red = (px[..., 0] > 150) & (px[..., 1] < 80) & (px[..., 2] < 80)
        assert red.sum() >= 4, "goal marker not visible"
    with make_task("fetch_pick_and_place") as task:
        assert task.reset(0)["proprio"].shape == (10,)


def test_same_seed_same_episode():
    with make_task("fetch_push", resolution=32) as task:
        a = task.reset(5)["pixels"]
        task.step(np.ones(4))
        b = task.reset(5)["pixels"]
    np.testing.assert_array_equal(a, b)
