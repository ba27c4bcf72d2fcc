import json

import numpy as np
import pytest

from vfmbench.data import collection as collect_mod
from vfmbench.data.collection import CollectConfig, collect
from vfmbench.data.episodes import EpisodeDataset, EpisodeWriter
from vfmbench.utils.errors import DatasetError

pytestmark = pytest.mark.sim


def _cfg(n, **kw):
    return CollectConfig(task="fetch_push", episodes=n, task_config={"resolution": 32, **kw})


def test_round_trip(tmp_path):
    ds = collect(_cfg(3), tmp_path / "d", progress=False)
    again = EpisodeDataset(tmp_path / "d")
    assert again.num_episodes == 3 and again.n_frames == 150 and again.complete
    px, act, st = again.load("pixels"), again.load("actions"), again.load("state")
    assert px.shape == (150, 32, 32, 3) and px.dtype == np.uint8
    assert act.shape == (150, 4) and st.shape == (150, 28)
    assert np.abs(act).max() <= 1.0
    assert again.episode_lengths.tolist() == [50, 50, 50]
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["header"]["task"]["camera"]["azimuth"] == 180.0
    assert man["header"]["task"]["resolution"] == 32
    assert {"mujoco", "gymnasium_robotics"} <= set(man["header"]["task"]["versions"])
    assert [e["seed"] for e in man["episodes"]] == [0, 1, 2]
    assert again.fingerprint() == ds.fingerprint() == again.compute_fingerprint()


def test_goal_conditioned_records_goal_images(tmp_path):
    ds = collect(_cfg(2, goal_conditioned=True), tmp_path / "g", progress=False)
    goals = ds.load("goal_pixels")
    assert goals.shape == (2, 32, 32, 3)
    # the goal state has the block at the goal: achieved position close to the desired goal
    gs = ds.load("goal_state")
    assert np.linalg.norm(gs[:, 3:6] - gs[:, 25:28], axis=1).max() < 0.05


def test_interrupted_collect_keeps_finished_episodes_and_resumes(tmp_path, monkeypatch):
    real = collect_mod._run_expert_episode
    calls = {"n": 0}

    def flaky(task, seed, noise=0.0):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task, seed, noise)

    monkeypatch.setattr(collect_mod, "_run_expert_episode", flaky)
    with pytest.raises(KeyboardInterrupt):
        collect(_cfg(4), tmp_path / "d", progress=False)
    partial = EpisodeDataset(tmp_path / "d")
    assert partial.num_episodes == 2 and not partial.complete
    assert partial.load("pixels").shape[0] == 100
    monkeypatch.setattr(collect_mod, "_run_expert_episode", real)
    done = collect(_cfg(4), tmp_path / "d", progress=False)
    assert done.num_episodes == 4 and done.complete
    assert [e["seed"] for e in done.manifest["episodes"]] == [0, 1, 2, 3]


def test_collect_in_worker_processes_writes_the_same_dataset(tmp_path):
    """Episodes run in two spawned processes (noise on, so seeds matter) and are written in seed
    order: the same arrays and manifest as one process; resuming with workers works too."""
    cfg = CollectConfig(task="fetch_reach", episodes=3, action_noise=0.3, task_config={"resolution": 24})
    one = collect(cfg, tmp_path / "one", progress=False)
    two = collect(cfg, tmp_path / "two", progress=False, workers=2)
    for name in ("pixels", "state", "actions"):
        assert np.array_equal(one.load(name), two.load(name)), name
    assert [e["seed"] for e in two.manifest["episodes"]] == [0, 1, 2] and two.manifest["attempts"] == 3
    cfg.episodes = 5
    more = collect(cfg, tmp_path / "two", progress=False, workers=2)
    assert [e["seed"] for e in more.manifest["episodes"]] == [0, 1, 2, 3, 4] and more.manifest["attempts"] == 5
    with pytest.raises(Exception, match="workers must be at least 1"):
        collect(cfg, tmp_path / "three", progress=False, workers=0)


def test_half_written_episode_is_ignored_then_truncated(tmp_path):
    header = {"task": {"task": "synthetic"}}
    w = EpisodeWriter(tmp_path / "d", header)
    frames = {"actions": np.zeros((5, 2), np.float32), "state": np.ones((5, 3), np.float32)}
    w.append(frames, {}, {"seed": 0})
    # simulate a crash after writing rows but before committing the manifest
    w.group["actions"].resize((8, 2))
    ds = EpisodeDataset(tmp_path / "d")
    assert ds.n_frames == 5 and ds.load("actions").shape == (5, 2)
    w2 = EpisodeWriter(tmp_path / "d", header)
    w2.append(frames, {}, {"seed": 1})
    assert EpisodeDataset(tmp_path / "d").load("actions").shape == (10, 2)


def test_corrupt_datasets_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        EpisodeDataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="manifest.json is missing"):
        EpisodeDataset(tmp_path / "empty")
    w = EpisodeWriter(tmp_path / "d", {"task": {}})
    w.append({"actions": np.zeros((5, 2), np.float32)}, {}, {"seed": 0})
    w.group["actions"].resize((3, 2))  # rows lost
    with pytest.raises(DatasetError, match="actions has 3 rows but the manifest commits 5"):
        EpisodeDataset(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        EpisodeDataset(tmp_path / "d")


def test_collect_refuses_to_mix_settings(tmp_path):
    collect(_cfg(1), tmp_path / "d", progress=False)
    with pytest.raises(DatasetError, match="resolution"):
        collect(CollectConfig(task="fetch_push", episodes=2, task_config={"resolution": 48}), tmp_path / "d",
                progress=False)


def test_collect_workers_end_with_a_killed_collect(tmp_path):
    """`collect --workers 2` killed with SIGTERM leaves no worker process behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "vfmbench", "collect", "--task", "fetch_reach", "--episodes", "50",
                             "--resolution", "24", "--workers", "2", "--out", str(tmp_path / "d"), "--no-progress"],
                            env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    children: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "d" / "manifest.json").exists():
        time.sleep(0.5)
    for _ in range(20):  # the two workers (and multiprocessing's resource tracker)
        path = f"/proc/{proc.pid}/task/{proc.pid}/children"
        children |= {int(c) for c in open(path).read().split()} if os.path.exists(path) else set()
        time.sleep(0.25)
    assert len(children) >= 2, children
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)

    def alive() -> list[int]:
        running = []
        for pid in children:
            try:
                if open(f"/proc/{pid}/stat").read().split()[2] != "Z":
                    running.append(pid)
            except OSError:
                pass  # gone
        return running

    deadline = time.time() + 15  # the workers notice their parent is gone within a second
    while alive() and time.time() < deadline:
        time.sleep(0.5)
    assert not alive(), alive()
