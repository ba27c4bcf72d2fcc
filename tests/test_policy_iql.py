"""Inverse IQL is tested by learning from noisy demonstrations of a point-mass reach: 30% of
the recorded actions are uniformly random. The inverse soft-Q critic must rank the expert's
action above random ones (its greedy policy imitates the expert), and the advantage-weighted
actor then follows the expert rather than the noise. With the sign of the inverse (value)
term flipped, the critic prefers random actions and its greedy policy is worse than chance."""

import numpy as np
import pytest
import torch

from vfmbench.data.episodes import EpisodeWriter
from vfmbench.policies import PolicyDims, make_policy
from vfmbench.policies.base import observation_vector
from vfmbench.policies.iql import InverseIQLPolicy
from vfmbench.training import RunSpec, TrainConfig, Trainer, load_agent
from vfmbench.utils.errors import ConfigError

SMALL = {"batch_size": 256, "lr": 1e-3, "critic_lr": 1e-3, "value_lr": 1e-3, "value_samples": 8,
         "actor_hidden": [64, 64], "critic_hidden": [64, 64], "value_hidden": [64, 64]}


def _expert(p, g):
    return np.clip((g - p) / 0.1, -1, 1)


@pytest.fixture(scope="module")
def noisy_reach(tmp_path_factory):
    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path_factory.mktemp("iql") / "data", {"task": {
        "task": "point_reach", "state_dim": 4, "proprio_dim": 0, "action_dim": 2, "goal_conditioned": False}})
    for ep in range(100):
        p, g = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        states, actions = [], []
        for _ in range(20):
            a = _expert(p, g) if rng.random() > 0.3 else rng.uniform(-1, 1, 2)
            states.append(np.r_[p, g])
            actions.append(a)
            p = p + 0.1 * a
        w.append({"state": np.array(states, np.float32), "actions": np.array(actions, np.float32),
                  "proprio": np.zeros((20, 0), np.float32)}, {}, {"seed": ep})
    return w.finalize()


def _train_and_probe(dataset, run_dir):
    """Train; return how often Q ranks the expert action above a random one, and the MSE to
    the expert action of the critic's greedy action (best of 256 random ones) and of the actor."""
    spec = RunSpec(task="point_reach", encoder="state", method="inverse_iql", method_config=SMALL,
                   train=TrainConfig(steps=400, log_every=100))
    Trainer(spec, dataset, run_dir, progress=False).run()
    agent, _ = load_agent(run_dir)
    policy = agent.policy
    rng = np.random.default_rng(1)
    p, g = rng.uniform(-1, 1, (500, 2)), rng.uniform(-1, 1, (500, 2))
    expert = torch.tensor(_expert(p, g), dtype=torch.float32)
    batch = {"features": agent.feature_norm(torch.tensor(np.c_[p, g], dtype=torch.float32))[:, None],
             "proprio": torch.zeros(500, 1, 0)}
    obs = observation_vector(batch)
    with torch.no_grad():
        q_expert = policy.critic(obs, expert).min(0).values
        q_random = policy.critic(obs, torch.rand(500, 2) * 2 - 1).min(0).values
        action = policy.act(batch)[:, 0]
        candidates = torch.rand(500, 256, 2) * 2 - 1
        q = policy.critic(obs.repeat_interleave(256, 0), candidates.view(-1, 2)).min(0).values.view(500, 256)
        greedy = candidates[torch.arange(500), q.argmax(1)]
    rank = (q_expert > q_random).float().mean().item()
    return rank, (greedy - expert).pow(2).mean().item(), (action - expert).pow(2).mean().item()


def test_inverse_iql_follows_the_expert_in_noisy_demos_and_flipped_inverse_term_does_not(noisy_reach, tmp_path,
                                                                                         monkeypatch):
    rank, greedy, actor = _train_and_probe(noisy_reach, tmp_path / "ok")
    assert rank > 0.9, rank
    assert greedy < 0.2, greedy  # a random action: about 1.3
    # MSE-BC's optimum here is the biased 0.7 * expert action (mse about 0.05); IQL reweights
    assert actor < 0.03, actor

    def flipped(self, obs, action, next_obs):
        c = self.config
        value, next_value = self.soft_value(obs), self.soft_value(next_obs)
        reward = self.critic(obs, action) - c.discount * next_value
        value_term = -(value - c.discount * next_value).mean(1)  # the broken sign
        return (-reward.mean(1) + value_term + reward.pow(2).mean(1) / (4 * c.chi2_alpha)).sum(), reward

    monkeypatch.setattr(InverseIQLPolicy, "critic_loss", flipped)
    rank, greedy, _ = _train_and_probe(noisy_reach, tmp_path / "flipped")
    assert rank < 0.5, rank
    assert greedy > 1.0, greedy


def test_jointly_trained_encoder_learns_through_the_actor_only():
    policy = make_policy("inverse_iql", SMALL, PolicyDims(8, 2, 3, True))
    encoder = torch.nn.Linear(5, 8)
    x = torch.randn(16, 2, 5)
    batch = {"features": encoder(x), "proprio": torch.randn(16, 2, 2), "goal": encoder(torch.randn(16, 5)),
             "actions": torch.rand(16, 1, 3) * 2 - 1}
    loss, _ = policy.loss(batch)
    loss.backward()
    with_actor = encoder.weight.grad.clone()
    assert with_actor.abs().sum() > 0
    encoder.zero_grad()
    policy.actor_loss = lambda obs, action, adv: (obs * 0).sum()  # no actor: nothing reaches the encoder
    batch = {**batch, "features": encoder(x), "goal": encoder(torch.randn(16, 5))}
    policy.loss(batch)[0].backward()
    assert encoder.weight.grad.abs().sum() == 0


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="expectile"):
        make_policy("inverse_iql", {"expectile": 1.5}, PolicyDims(4, 0, 2, False))
    with pytest.raises(ConfigError, match="critic_lrr"):
        make_policy("inverse_iql", {"critic_lrr": 1.0}, PolicyDims(4, 0, 2, False))
