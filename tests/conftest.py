"""Shared fixtures. VFMBENCH_HOME points at a temporary folder so tests never touch the user's cache."""

from __future__ import annotations

import os

import pytest
import torch

# Test models are toy-sized: intra-op threads gain nothing, and OpenMP's spinning threads make
# small kernels tens of times slower when the 2 cores are shared with other work.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.getbasetemp() / "vfmbench_home"
    monkeypatch.setenv("VFMBENCH_HOME", str(home))
    yield


@pytest.fixture(scope="session")
def reach_dataset(tmp_path_factory):
    """20 expert episodes of fetch_reach at 84x84 (collected once per test session)."""
    from vfmbench.data.collection import CollectConfig, collect

    return collect(CollectConfig(task="fetch_reach", episodes=20), tmp_path_factory.mktemp("data") / "reach",
                   progress=False)


@pytest.fixture
def synthetic(tmp_path):
    """A tiny state-only dataset: 4 episodes of 10 steps, state [4], proprio [2], actions [2]."""
    import numpy as np

    from vfmbench.data.episodes import EpisodeWriter

    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path / "syn", {"task": {"task": "synthetic", "state_dim": 4, "proprio_dim": 2,
                                                  "action_dim": 2, "goal_conditioned": False}})
    for ep in range(4):
        s = rng.normal(size=(10, 4)).astype(np.float32)
        w.append({"state": s, "actions": np.tanh(s[:, :2]), "proprio": s[:, 2:].copy()}, {}, {"seed": ep})
    return w.finalize()


def pytest_configure(config):
    os.environ.setdefault("MUJOCO_GL", "egl")
