"""Ground-truth masks from MuJoCo segmentation."""

import numpy as np
import pytest

from vfmbench.tasks import TaskConfig, make_task
from vfmbench.utils.errors import ConfigError

pytestmark = pytest.mark.sim


def test_object_mask_covers_the_block_at_84():
    with make_task("fetch_push", resolution=84) as t:
        counts, brightness = [], []
        for seed in range(12):
            px = t.reset(seed)["pixels"].astype(int)
            m = t.mask(["object"])
            counts.append(int(m.sum()))
            if m.sum():
                brightness.append(px[m].mean())
    visible = [c for c in counts if c > 0]
    assert len(visible) >= 8, counts  # the arm hides the block in a few episodes
    assert 25 <= np.median(visible) <= 120, counts  # a 5 cm block is about 6x6 pixels
    assert max(counts) < 200
    assert max(brightness) < 110  # the block is dark grey on a white table


def test_goal_mask_is_the_red_marker_and_groups_combine():
    with make_task("fetch_push", resolution=84) as t:
        px = t.reset(5)["pixels"].astype(int)
        goal = t.mask(["goal"])
        assert 5 <= goal.sum() <= 60
        r, g, b = px[goal].mean(0)
        assert r > 150 and g < 90 and b < 90, (r, g, b)
        assert 100 <= t.mask(["gripper"]).sum() <= 1500
        default = t.mask()
        assert t.mask_groups == ("object", "gripper", "goal")
        np.testing.assert_array_equal(default, t.mask(["object"]) | t.mask(["gripper"]) | goal)
        assert t.mask(["arm"]).sum() > t.mask(["gripper"]).sum()


def test_reach_goal_mask_includes_its_pole_and_unknown_groups_fail():
    with make_task("fetch_reach", resolution=64) as t:
        assert t.mask_groups == ("gripper", "goal")
        seed = next(s for s in range(20) if t.reset(s)["state"][-1] > 0.52)  # a goal high above the table
        goal_rows = np.flatnonzero(t.mask(["goal"]).any(1))
        assert goal_rows[-1] - goal_rows[0] >= 8, seed  # the marker and the pole's foot below it
        with pytest.raises(ConfigError, match="mask_groups: 'object'.*valid.*: gripper, arm, goal"):
            t.mask(["object"])
    with pytest.raises(ConfigError, match="mask_groups"):
        make_task("fetch_reach", resolution=32, mask_groups=["object"])


def test_masks_in_observations_match_mask_and_ignore_distractors():
    cfg = {"resolution": 48, "masks": True, "goal_conditioned": True, "shift": "distractor",
           "shift_options": {"count": 3}}
    with make_task("fetch_push", cfg) as t:
        obs = t.reset(2)
        assert obs["mask"].dtype == bool and obs["mask"].shape == (48, 48)
        assert obs["goal_mask"].shape == (48, 48) and obs["goal_mask"].any()
        np.testing.assert_array_equal(obs["mask"], t.mask())
        step = t.step(np.zeros(4)).observation
        np.testing.assert_array_equal(step["mask"], t.mask())
        from vfmbench.tasks.shifts import Label

        distractor = t._view.labels(t._data) == Label.DISTRACTOR
        assert distractor.any() and not (t.mask() & distractor).any()


def test_datasets_store_masks_on_request(tmp_path):
    from vfmbench.data.collection import CollectConfig, collect

    cfg = TaskConfig(resolution=32, masks=True, max_episode_steps=5)
    ds = collect(CollectConfig(task="fetch_push", episodes=2, task_config=cfg, keep_failures=True),
                 tmp_path / "d", progress=False)
    masks = ds.load("masks")
    assert masks.shape == (10, 32, 32) and masks.dtype == bool and masks.any(axis=(1, 2)).all()
    assert ds.header["task_config"]["masks"] is True
    with make_task("fetch_push", cfg) as t:
        t.reset(ds.manifest["episodes"][0]["seed"])
        np.testing.assert_array_equal(masks[0], t.mask())
