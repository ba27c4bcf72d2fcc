"""Gaussian BC is tested by learning heteroscedastic actions: the demonstrations' noise is
0.05 where the first state entry is positive and 0.3 elsewhere. Maximum likelihood recovers
the mean and both noise levels; a variant whose log-likelihood drops the ``-log sigma``
normaliser does not (its sigma runs to the upper clamp)."""

import numpy as np
import pytest
import torch

import vfmbench.policies.gaussian_bc as gaussian_bc
from vfmbench.data.episodes import EpisodeWriter
from vfmbench.training import RunSpec, TrainConfig, Trainer, load_agent

SMALL = {"hidden": [64], "head": [64], "lr": 3e-3, "min_log_std": -5.0}  # a floor below the 0.05 noise


W = np.random.default_rng(42).normal(size=(4, 2))


def _noise(s):
    return np.where(s[:, :1] > 0, 0.05, 0.3)


@pytest.fixture(scope="module")
def heteroscedastic(tmp_path_factory):
    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path_factory.mktemp("gbc") / "data", {"task": {
        "task": "hetero", "state_dim": 4, "proprio_dim": 0, "action_dim": 2, "goal_conditioned": False}})
    for ep in range(60):
        s = rng.normal(size=(50, 4))
        a = np.tanh(s @ W) * 0.7 + _noise(s) * rng.normal(size=(50, 2))
        w.append({"state": s.astype(np.float32), "actions": a.astype(np.float32),
                  "proprio": np.zeros((50, 0), np.float32)}, {}, {"seed": ep})
    return w.finalize()


def _fit(dataset, run_dir, config=SMALL):
    spec = RunSpec(task="hetero", encoder="state", method="gaussian_bc", method_config=config,
                   train=TrainConfig(steps=1500, log_every=100))
    Trainer(spec, dataset, run_dir, progress=False).run()
    agent, _ = load_agent(run_dir)
    s = np.random.default_rng(1).normal(size=(2000, 4))
    batch = {"features": agent.feature_norm(torch.tensor(s, dtype=torch.float32))[:, None],
             "proprio": torch.zeros(2000, 1, 0)}
    with torch.no_grad():
        mean, log_std = agent.policy.distribution(batch)
        act = agent.policy.act(batch)[:, 0]
    assert torch.equal(act, mean)  # the mean at evaluation
    std = log_std.exp().numpy()
    pos = s[:, 0] > 0
    mse = float(np.mean((mean.numpy() - np.tanh(s @ W) * 0.7) ** 2))
    return float(np.median(std[pos])), float(np.median(std[~pos])), mse


def test_gaussian_bc_recovers_mean_and_noise_and_without_normaliser_does_not(heteroscedastic, tmp_path, monkeypatch):
    low, high, mse = _fit(heteroscedastic, tmp_path / "ok")
    assert 0.03 < low < 0.08 and 0.2 < high < 0.4, (low, high)
    assert mse < 0.02, mse

    def no_normaliser(mean, log_std, x, weight=None):
        return (-0.5 * ((x - mean) * torch.exp(-log_std)).pow(2)).sum(-1)

    monkeypatch.setattr(gaussian_bc, "gaussian_log_prob", no_normaliser)
    low, high, _ = _fit(heteroscedastic, tmp_path / "broken")
    assert low > 1.0 and high > 1.0, (low, high)


def test_beta_nll_keeps_the_noise_estimate(heteroscedastic, tmp_path):
    low, high, mse = _fit(heteroscedastic, tmp_path / "beta", {**SMALL, "beta_nll": 0.5})
    assert 0.03 < low < 0.08 and 0.2 < high < 0.4, (low, high)
    assert mse < 0.02, mse
