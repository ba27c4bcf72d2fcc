import subprocess
import sys

import numpy as np
import pytest

from vfmbench.utils.rendering import probe_backend

pytestmark = pytest.mark.sim


def test_egl_renders_headless():
    ok, err = probe_backend("egl")
    assert ok, err


def test_bad_backend_gives_actionable_error():
    code = (
        "import os; os.environ['MUJOCO_GL']='nonexistent_gl';"
        "from vfmbench.utils.rendering import ensure_rendering\n"
        "try:\n ensure_rendering()\nexcept Exception as e: print(type(e).__name__, e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "RenderingError" in out and "MUJOCO_GL=nonexistent_gl" in out and "unset it" in out


@pytest.mark.parametrize("name,config", [("fetch_reach", {"goal_conditioned": True, "masks": True}),
                                         ("dmc_cartpole_balance", {"masks": True}),
                                         ("adroit_door", {"masks": True})])
def test_tasks_render_nothing_for_agents_that_read_no_pixels(name, config):
    """With `render_pixels` off a task steps the same episode (state, reward) without drawing a
    frame; switched back on, its frames return."""
    from vfmbench.tasks import TaskConfig, make_task

    cfg = TaskConfig(**config)
    with make_task(name, cfg) as drawn, make_task(name, cfg) as blind:
        blind.render_pixels = False
        calls = []
        blind._view.render = blind._view.render_with_mask = lambda *a, **k: calls.append(a)
        a, b = drawn.reset(3), blind.reset(3)
        assert {"pixels", "mask"} <= set(a) and not {"pixels", "mask", "goal_pixels", "goal_mask"} & set(b)
        rng = np.random.default_rng(0)
        for _ in range(4):
            action = rng.uniform(-1, 1, drawn.action_dim)
            ra, rb = drawn.step(action), blind.step(action)
            assert ra.reward == rb.reward and np.array_equal(ra.observation["state"], rb.observation["state"])
            assert set(ra.observation) - set(rb.observation) == {"pixels", "mask"} | (
                {"goal_pixels", "goal_mask"} if cfg.goal_conditioned else set())
        assert calls == []
    with make_task(name, cfg) as task:
        task.render_pixels = False
        task.reset(0)
        task.render_pixels = True
        assert task.step(np.zeros(task.action_dim)).observation["pixels"].shape == (84, 84, 3)


def test_evaluation_renders_frames_only_for_agents_that_read_them(tmp_path):
    from vfmbench.evaluation import evaluate
    from vfmbench.tasks import make_task
    from vfmbench.training import RunSpec
    from vfmbench.training.trainer import build_agent

    envs = [make_task("fetch_reach") for _ in range(2)]
    for encoder, renders in (("state", False), ("e2e_cnn", True)):
        agent = build_agent(RunSpec(task="fetch_reach", encoder=encoder), envs[0].spaces)
        result = evaluate(agent, "fetch_reach", episodes=2, n_envs=2, envs=envs, progress=False)
        assert result.episodes == 2 and all(env.render_pixels is renders for env in envs)
    agent = build_agent(RunSpec(task="fetch_reach", encoder="state"), envs[0].spaces)
    evaluate(agent, "fetch_reach", episodes=1, n_envs=1, envs=envs[:1], progress=False, video=tmp_path / "v.gif")
    assert envs[0].render_pixels  # a video needs the frames
    for env in envs:
        env.close()
