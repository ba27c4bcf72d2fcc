"""The Visual Alignment Testing task pair: fetch_reach_red and fetch_reach_blue."""

from __future__ import annotations

import numpy as np
import pytest

from vfmbench.tasks import get_task_spec, list_tasks, make_task

PAIR = ("fetch_reach_red", "fetch_reach_blue")


@pytest.fixture(scope="module")
def pair():
    tasks = [make_task(name) for name in PAIR]
    yield tasks
    for task in tasks:
        task.close()


def test_registered_with_experts():
    for name in PAIR:
        assert name in list_tasks()
        spec = get_task_spec(name)
        assert spec.expert and spec.success and spec.family == "fetch"


def test_same_frames_and_scene_for_the_same_seed(pair):
    red, blue = pair
    for seed in range(5):
        a, b = red.reset(seed), blue.reset(seed)
        assert np.array_equal(a["pixels"], b["pixels"])  # one visual distribution
        assert np.array_equal(a["proprio"], b["proprio"])
        np.testing.assert_array_equal(red.blocks, blue.blocks)
        # privileged state: gripper (10), red and blue block centres (6), then the task's own goal (3)
        assert a["state"].shape == (19,) and np.array_equal(a["state"][:16], b["state"][:16])
        assert not np.allclose(a["state"][16:], b["state"][16:])
        assert np.linalg.norm(red.blocks[0, :2] - red.blocks[1, :2]) >= 0.12 - 1e-9
    frames = [red.reset(seed)["pixels"] for seed in (0, 1)]
    assert not np.array_equal(*frames)  # the seed places the blocks


def test_experts_succeed(pair):
    for task in pair:
        wins = 0
        for seed in range(10):
            task.reset(seed)
            for _ in range(task.max_episode_steps):
                step = task.step(task.expert_action())
            wins += step.success
        assert wins >= 9, f"{task.name}: expert succeeded in {wins}/10"


def test_success_is_defined_by_the_right_block(pair):
    """Both tasks step the same physics; driven by the red expert, only the red task succeeds."""
    red, blue = pair
    for seed in range(3):
        red.reset(seed), blue.reset(seed)
        for _ in range(red.max_episode_steps):
            action = red.expert_action()
            r, b = red.step(action), blue.step(action)
        assert r.success and not b.success
        assert red.is_success() and not blue.is_success()


def test_target_block_is_the_goal_in_masks():
    """The goal mask covers the task's block: the two tasks' masks are disjoint blocks."""
    red = make_task("fetch_reach_red", masks=True, mask_groups=["goal"])
    blue = make_task("fetch_reach_blue", masks=True, mask_groups=["goal"])
    try:
        for seed in range(3):
            a, b = red.reset(seed)["mask"], blue.reset(seed)["mask"]
            assert a.sum() > 20 and b.sum() > 20 and not (a & b).any()
            pixels = red.reset(seed)["pixels"].astype(int)
            assert pixels[a][:, 0].mean() > pixels[a][:, 2].mean() + 50  # red block
            assert pixels[b][:, 2].mean() > pixels[b][:, 0].mean() + 50  # blue block
    finally:
        red.close()
        blue.close()
