"""Diffusion Policy is tested by learning a two-mode action distribution: for the same
observation the demonstrated action chunk is +0.9 or -0.9 with equal probability. Both DP
networks sample near both modes; MSE-BC predicts their average (about 0), which no
demonstration ever did. The DDPM/DDIM schedule is checked against exact denoisers."""

import math

import numpy as np
import pytest
import torch

from vfmbench.data.episodes import EpisodeWriter
from vfmbench.policies import PolicyDims, make_policy
from vfmbench.policies.diffusion import NoiseSchedule
from vfmbench.training import RunSpec, TrainConfig, Trainer, load_agent
from vfmbench.utils.errors import ConfigError

MODE = 0.9
TINY = {
    "dp_conv": {"down_dims": [32, 64], "step_embed_dim": 32, "kernel_size": 3},
    "dp_transformer": {"n_layer": 2, "n_emb": 64, "p_drop_attn": 0.0},
}
SHORT = {"obs_horizon": 1, "pred_horizon": 4, "action_horizon": 2, "lr": 1e-3, "warmup_steps": 50, "batch_size": 128}


@pytest.fixture(scope="module")
def bimodal(tmp_path_factory):
    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path_factory.mktemp("dp") / "data", {"task": {
        "task": "bimodal", "state_dim": 3, "proprio_dim": 0, "action_dim": 2, "goal_conditioned": False}})
    for ep in range(40):
        sign = 1.0 if ep % 2 else -1.0
        w.append({"state": rng.normal(size=(20, 3)).astype(np.float32),
                  "actions": np.full((20, 2), sign * MODE, np.float32),
                  "proprio": np.zeros((20, 0), np.float32)}, {}, {"seed": ep})
    return w.finalize()


def _first_actions(dataset, run_dir, method, config, steps):
    spec = RunSpec(task="bimodal", encoder="state", method=method, method_config=config,
                   train=TrainConfig(steps=steps, log_every=100))
    Trainer(spec, dataset, run_dir, progress=False).run()
    agent, _ = load_agent(run_dir)
    policy = agent.policy
    torch.manual_seed(0)
    feats = agent.feature_norm(torch.randn(200, policy.history, 3))
    with torch.no_grad():
        chunk = policy.act({"features": feats, "proprio": torch.zeros(200, policy.history, 0)})
    return chunk.numpy()


@pytest.mark.parametrize("method", ["dp_conv", "dp_transformer"])
def test_diffusion_policy_samples_both_modes_where_bc_averages(bimodal, tmp_path, method):
    chunk = _first_actions(bimodal, tmp_path / method, method, {**TINY[method], **SHORT}, steps=400)
    assert chunk.shape == (200, SHORT["action_horizon"], 2)
    a = chunk[:, 0, 0]
    near_plus, near_minus = np.mean(np.abs(a - MODE) < 0.2), np.mean(np.abs(a + MODE) < 0.2)
    assert near_plus > 0.3 and near_minus > 0.3, (near_plus, near_minus)
    assert np.mean(np.abs(a) < 0.4) < 0.1
    # an action chunk is one mode, not a mixture of both
    assert np.mean(np.sign(chunk) == np.sign(chunk[:, :1, :1])) > 0.9  # independent modes: 0.5


def test_mse_bc_averages_the_modes(bimodal, tmp_path):
    a = _first_actions(bimodal, tmp_path / "bc", "bc", {"hidden": [64], "head": [64]}, steps=300)[:, 0, 0]
    assert np.mean(np.abs(a) < 0.3) > 0.9, a[:10]


def _exact_two_point_eps(schedule: NoiseSchedule):
    """The optimal noise prediction when x0 is -1 or +1 with equal probability (per entry)."""
    abar = schedule.alphas_cumprod

    def eps(x, k):
        a = abar[k].view(-1, *([1] * (x.dim() - 1)))
        mean_x0 = torch.tanh(a.sqrt() * x / (1 - a))  # E[x0 | x_k]
        return (x - a.sqrt() * mean_x0) / (1 - a).sqrt()

    return eps


@pytest.mark.parametrize("beta_schedule", ["squaredcos_cap_v2", "linear"])
def test_ddim_with_exact_denoiser_recovers_the_data_distribution(beta_schedule):
    schedule = NoiseSchedule(100, beta_schedule)
    assert schedule.ddim_timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    gen = torch.Generator().manual_seed(0)
    x = schedule.sample(_exact_two_point_eps(schedule), (4000, 1), 10, generator=gen)
    assert torch.all((x.abs() - 1).abs() < 0.05)  # every sample lands on a data point
    assert abs((x > 0).float().mean().item() - 0.5) < 0.05  # both modes, equal weight
    # a point mass: the exact denoiser makes DDIM return it
    c = torch.tensor([0.3, -0.7])

    def point_eps(x, k):
        a = schedule.alphas_cumprod[k].view(-1, 1)
        return (x - a.sqrt() * c) / (1 - a).sqrt()

    assert torch.allclose(schedule.sample(point_eps, (5, 2), 7), c.expand(5, 2), atol=1e-4)


def test_forward_process_matches_the_schedule():
    schedule = NoiseSchedule(100)
    abar = schedule.alphas_cumprod
    assert abar[0] > 0.99 and abar[-1] < 1e-3 and torch.all(abar[1:] < abar[:-1])
    x0 = torch.full((20000, 1), 0.5)
    xk = schedule.add_noise(x0, torch.randn_like(x0), torch.full((20000,), 50))
    assert abs(xk.mean().item() - 0.5 * math.sqrt(abar[50])) < 0.02
    assert abs(xk.var().item() - (1 - abar[50]).item()) < 0.02


def test_windows_and_config_errors():
    dims = PolicyDims(5, 0, 2, False)
    p = make_policy("dp_conv", {**TINY["dp_conv"], "obs_horizon": 2, "pred_horizon": 8, "action_horizon": 4}, dims)
    assert p.obs_offsets == (-1, 0) and p.action_offsets == tuple(range(-1, 7)) and p.history == 2
    with pytest.raises(ConfigError, match="pred_horizon"):
        make_policy("dp_conv", {"down_dims": [16, 32, 64], "n_groups": 8, "pred_horizon": 6}, dims)
    with pytest.raises(ConfigError, match="action_horizon"):
        make_policy("dp_transformer", {"pred_horizon": 4, "obs_horizon": 2, "action_horizon": 4}, dims)
