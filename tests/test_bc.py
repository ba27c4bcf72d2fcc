"""BC is tested by learning: on a synthetic dataset whose actions are a nonlinear function of
the state, the trainer's BC fits the actions; a variant whose windows pair each state with the
next step's action (an off-by-one bug) cannot."""

import json

import numpy as np
import pytest

from vfmbench.data.episodes import EpisodeWriter
from vfmbench.policies.bc import BCPolicy
from vfmbench.training import RunSpec, TrainConfig, Trainer


@pytest.fixture
def synthetic(tmp_path):
    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path / "syn", {"task": {"task": "synthetic", "state_dim": 6, "proprio_dim": 0,
                                                  "action_dim": 2, "goal_conditioned": False}})
    W = rng.normal(size=(6, 2))
    for ep in range(80):  # 4000 frames: too many for the network to memorise in 600 steps
        s = rng.normal(size=(50, 6)).astype(np.float32)
        a = np.tanh(s @ W).astype(np.float32)
        w.append({"state": s, "actions": a, "proprio": np.zeros((50, 0), np.float32)}, {}, {"seed": ep})
    return w.finalize()


def _final_mse(run_dir):
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return lines[-1]["mse"]


def test_bc_learns_and_off_by_one_does_not(synthetic, tmp_path, monkeypatch):
    spec = RunSpec(task="synthetic", encoder="state", method="bc", train=TrainConfig(steps=600, log_every=100))
    Trainer(spec, synthetic, tmp_path / "ok", progress=False).run()
    good = _final_mse(tmp_path / "ok")
    monkeypatch.setattr(BCPolicy, "action_offsets", (1,))
    Trainer(spec, synthetic, tmp_path / "broken", progress=False).run()
    broken = _final_mse(tmp_path / "broken")
    assert good < 0.02, good
    assert broken > 0.3, broken


def test_goal_conditioned_bc_needs_goal_data(synthetic, tmp_path):
    from vfmbench.utils.errors import ConfigError

    spec = RunSpec(task="synthetic", encoder="state", method="bc", method_config={"goal_conditioned": True},
                   train=TrainConfig(steps=10))
    with pytest.raises(ConfigError, match="goal_conditioned"):
        Trainer(spec, synthetic, tmp_path / "gc", progress=False).run()


def test_paper_architecture():
    from vfmbench.policies import PolicyDims, make_policy
    from torch import nn

    p = make_policy("bc", {"goal_conditioned": True}, PolicyDims(9216, 10, 4, True))
    lin = [m for m in p.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in lin]
    assert (9216, 256) in shapes and (256, 128) in shapes and (128, 64) in shapes
    assert (10, 128) in shapes  # proprio projected to 128 with a goal
    assert (64 + 64 + 128, 256) in shapes and shapes[-1] == (64, 4)
    assert any(isinstance(m, nn.SELU) for m in p.modules())
    p2 = make_policy("bc", {}, PolicyDims(512, 10, 4, False))
    assert (10, 64) in [(m.in_features, m.out_features) for m in p2.modules() if isinstance(m, nn.Linear)]
