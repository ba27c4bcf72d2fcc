"""Diffusion Policy is tested by learning a two-mode action distribution: for the same
observation the demonstrated action chunk is +0.9 or -0.9 with equal probability. Both DP
networks sample near both modes; MSE-BC predicts their average (about 0), which no
demonstration ever did. A tiny DP fitted to a point mass must sample it precisely and predict
its exact noise. The schedulers (diffusers' DDPM/DDIM) are checked against the closed-form
schedules and with exact denoisers built from them; the EMA (torch's AveragedModel) against
DP's decay recursion and through a checkpoint round trip."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

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
    chunk = _first_actions(bimodal, tmp_path / method, method, {**TINY[method], **SHORT}, steps=600)
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


# -- schedulers -----------------------------------------------------------------------------------


def reference_abar(steps: int, beta_schedule: str, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """``abar_k``, k = 0..K-1, from the papers' formulas (independent of the library)."""
    if beta_schedule == "squaredcos_cap_v2":  # Nichol & Dhariwal (2021), betas capped at 0.999
        f = [math.cos((t / steps + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(steps + 1)]
        betas = torch.tensor([min(1 - f[t + 1] / f[t], 0.999) for t in range(steps)], dtype=torch.float64)
    else:  # Ho et al. (2020), linear in beta
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


LINEAR_100 = {"beta_start": 1e-3, "beta_end": 0.2}  # Ho et al.'s 1e-4..0.02 over 1000 steps, rescaled to 100
SCHEDULES = [("squaredcos_cap_v2", {}), ("linear", LINEAR_100)]


def _abar_at(abar: torch.Tensor, k: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return abar[k].view(-1, *([1] * (x.dim() - 1)))


def _exact_two_point_eps(abar: torch.Tensor):
    """The optimal noise prediction when x0 is -1 or +1 with equal probability (per entry)."""

    def eps(x, k):
        a = _abar_at(abar, k, x)
        mean_x0 = torch.tanh(a.sqrt() * x / (1 - a))  # E[x0 | x_k]
        return (x - a.sqrt() * mean_x0) / (1 - a).sqrt()

    return eps


@pytest.mark.parametrize("beta_schedule,betas", SCHEDULES, ids=["cosine", "linear"])
def test_schedulers_follow_the_closed_form_schedule(beta_schedule, betas):
    schedule = NoiseSchedule(100, beta_schedule, **betas)
    ref = reference_abar(100, beta_schedule, **betas)
    for scheduler in (schedule.train, schedule.sampler):
        assert torch.allclose(scheduler.alphas_cumprod, ref, rtol=1e-4, atol=1e-6)
    assert schedule.sampler.final_alpha_cumprod == 1.0
    assert schedule.ddim_timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert schedule.ddim_timesteps(7) == [84, 70, 56, 42, 28, 14, 0]


def test_linear_betas_are_not_rescaled_to_the_number_of_steps():
    """diffusers' semantics: linspace(beta_start, beta_end, K) whatever K is."""
    betas = NoiseSchedule(100, "linear").train.betas
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("beta_schedule,betas", SCHEDULES, ids=["cosine", "linear"])
def test_ddim_with_exact_denoiser_recovers_the_data_distribution(beta_schedule, betas):
    schedule = NoiseSchedule(100, beta_schedule, **betas)
    abar = reference_abar(100, beta_schedule, **betas)
    gen = torch.Generator().manual_seed(0)
    x = schedule.sample(_exact_two_point_eps(abar), (4000, 1), 10, generator=gen)
    assert torch.all((x.abs() - 1).abs() < 0.05)  # every sample lands on a data point
    assert abs((x > 0).float().mean().item() - 0.5) < 0.05  # both modes, equal weight
    # a point mass: the exact denoiser makes DDIM return it
    c = torch.tensor([0.3, -0.7])

    def point_eps(x, k):
        a = _abar_at(abar, k, x)
        return (x - a.sqrt() * c) / (1 - a).sqrt()

    assert torch.allclose(schedule.sample(point_eps, (5, 2), 7), c.expand(5, 2), atol=1e-4)


def test_forward_process_matches_the_schedule():
    schedule = NoiseSchedule(100)
    abar = reference_abar(100, "squaredcos_cap_v2")
    assert abar[0] > 0.99 and abar[-1] < 1e-3 and torch.all(abar[1:] < abar[:-1])
    x0 = torch.full((20000, 1), 0.5)
    for k in (5, 50, 90):
        xk = schedule.add_noise(x0, torch.randn_like(x0), torch.full((20000,), k))
        assert abs(xk.mean().item() - 0.5 * math.sqrt(abar[k])) < 0.02, k
        assert abs(xk.var().item() - (1 - abar[k]).item()) < 0.02, k


# -- a tiny DP fitted to a point mass -------------------------------------------------------------

POINT = torch.tensor([0.6, -0.4])
DIMS = PolicyDims(3, 0, 2, False)


def _obs(n: int) -> dict[str, torch.Tensor]:
    return {"features": torch.randn(n, 1, 3), "proprio": torch.zeros(n, 1, 0)}


def test_fitted_policy_samples_its_target_and_predicts_its_noise():
    """Every demonstrated chunk is POINT whatever the observation. 10 diffusion steps, all visited
    by DDIM, so each step of the sampler matters: a wrong sampler, a skipped last step (noise of
    std sqrt(1 - abar_0) = 0.17 left) or a wrong training schedule shows in the error."""
    torch.manual_seed(0)
    policy = make_policy("dp_transformer", {"n_layer": 1, "n_emb": 32, "p_drop_attn": 0.0, "obs_horizon": 1,
                                            "pred_horizon": 4, "action_horizon": 2, "train_steps": 10,
                                            "inference_steps": 10, "lr": 3e-3, "warmup_steps": 20}, DIMS)
    optimizers = policy.configure_optimizers([], 300)
    for step in range(1, 301):
        obs = _obs(64)
        policy.update({**obs, "actions": POINT.expand(64, 4, 2)}, optimizers, step)
    policy.eval()
    obs = _obs(500)
    x = policy.sample(obs, generator=torch.Generator().manual_seed(0))
    sample_rmse = (x - POINT).pow(2).mean().sqrt().item()
    assert sample_rmse < 0.1, sample_rmse  # about 0.05; last step skipped: 0.19, sampler's betas x10: > 0.4
    # the averaged network's noise prediction on the true forward process, all steps
    abar = reference_abar(10, "squaredcos_cap_v2")
    k = torch.arange(500) % 10
    a, eps = _abar_at(abar, k, x), torch.randn(500, 4, 2)
    with torch.no_grad():
        pred = policy.ema(a.sqrt() * POINT + (1 - a).sqrt() * eps, k, policy.condition(obs))
    eps_rmse = (pred - eps).pow(2).mean().sqrt().item()
    assert eps_rmse < 0.15, eps_rmse  # about 0.04; trained with betas x10: 0.5


# -- EMA and checkpoints --------------------------------------------------------------------------

TINY_CONV = {"down_dims": [16, 32], "step_embed_dim": 16, "kernel_size": 3, "obs_horizon": 1, "pred_horizon": 4,
             "action_horizon": 2, "lr": 1e-2, "warmup_steps": 0}


def _train(policy, steps: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """`steps` updates on random batches; the network's parameters after each."""
    torch.manual_seed(seed)
    optimizers = policy.configure_optimizers([], steps)
    history = []
    for step in range(1, steps + 1):
        policy.update({**_obs(16), "actions": torch.rand(16, 4, 2) * 2 - 1}, optimizers, step)
        history.append({k: v.detach().clone() for k, v in policy.net.named_parameters()})
    return history


def test_ema_follows_dp_decay_and_is_what_sampling_uses():
    policy = make_policy("dp_conv", TINY_CONV, DIMS)
    history = _train(policy, 6)
    # DP's EMA: the first update copies the network, the n-th has decay min(0.9999, 1 - (1 + n)^-0.75)
    expected = dict(history[0])
    for n, params in enumerate(history[1:], start=2):
        decay = min(0.9999, 1 - (1 + n) ** -0.75)
        expected = {k: decay * expected[k] + (1 - decay) * params[k] for k in params}
    ema = dict(policy.ema.module.named_parameters())
    assert int(policy.ema.n_averaged) == 6
    for k, v in expected.items():
        assert torch.allclose(ema[k], v, atol=1e-6), k
    # sampling uses the averaged network: scrambling the trained one changes nothing
    policy.eval()
    obs = _obs(8)
    before = policy.sample(obs, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for p in policy.net.parameters():
            p.normal_()
    assert torch.equal(policy.sample(obs, generator=torch.Generator().manual_seed(1)), before)


def test_sampling_is_reproducible_with_a_generator():
    policy = make_policy("dp_conv", TINY_CONV, DIMS).eval()
    obs = _obs(4)
    a = policy.sample(obs, generator=torch.Generator().manual_seed(3))
    assert a.shape == (4, 4, 2)
    assert torch.equal(a, policy.sample(obs, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(a, policy.sample(obs, generator=torch.Generator().manual_seed(4)))
    assert policy.act(obs).shape == (4, 2, 2)


def test_checkpoint_round_trip_restores_the_ema_and_its_count(tmp_path):
    """The trainer saves the policy's state dict as safetensors; the EMA must resume exactly."""
    policy = make_policy("dp_conv", TINY_CONV, DIMS)
    _train(policy, 3)
    save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(tmp_path / "model.safetensors"))
    state = load_file(str(tmp_path / "model.safetensors"))
    assert int(state["ema.n_averaged"]) == 3 and any(k.startswith("ema.module.") for k in state)
    restored = make_policy("dp_conv", TINY_CONV, DIMS)
    restored.load_state_dict(state)
    assert int(restored.ema.n_averaged) == 3
    obs = _obs(8)
    for p in (policy, restored):
        p.eval()
    assert torch.equal(policy.sample(obs, generator=torch.Generator().manual_seed(2)),
                       restored.sample(obs, generator=torch.Generator().manual_seed(2)))
    # the next update continues the average (decay of update 4), it does not restart it
    with torch.no_grad():
        for p in policy.net.parameters():
            p.add_(0.1)
    restored.net.load_state_dict(policy.net.state_dict())
    for p in (policy, restored):
        p.ema.update_parameters(p.net)
    for (k, a), b in zip(policy.ema.state_dict().items(), restored.ema.state_dict().values()):
        assert torch.equal(a, b), k
    # checkpoints from before the AveragedModel EMA have other key names: a clear error, even non-strict
    old = {k.replace("ema.module.", "ema."): v for k, v in state.items() if k != "ema.n_averaged"}
    with pytest.raises(RuntimeError, match="older vfmbench"):
        restored.load_state_dict(old, strict=False)


def test_windows_and_config_errors():
    dims = PolicyDims(5, 0, 2, False)
    p = make_policy("dp_conv", {**TINY["dp_conv"], "obs_horizon": 2, "pred_horizon": 8, "action_horizon": 4}, dims)
    assert p.obs_offsets == (-1, 0) and p.action_offsets == tuple(range(-1, 7)) and p.history == 2
    with pytest.raises(ConfigError, match="pred_horizon"):
        make_policy("dp_conv", {"down_dims": [16, 32, 64], "n_groups": 8, "pred_horizon": 6}, dims)
    with pytest.raises(ConfigError, match="action_horizon"):
        make_policy("dp_transformer", {"pred_horizon": 4, "obs_horizon": 2, "action_horizon": 4}, dims)
    with pytest.raises(ConfigError, match="beta_start"):
        make_policy("dp_conv", {**TINY["dp_conv"], "beta_start": 0.1, "beta_end": 0.01}, dims)


# -- DP's training settings ---------------------------------------------------------------------


def test_learning_rate_warms_up_then_decays_on_a_cosine_to_zero():
    from vfmbench.policies.diffusion import lr_scale

    assert [lr_scale(s, 10, 110) for s in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert lr_scale(60, 10, 110) == pytest.approx(0.5)
    assert lr_scale(110, 10, 110) == pytest.approx(0.0) and lr_scale(200, 10, 110) == 0.0
    policy = make_policy("dp_conv", TINY_CONV | {"warmup_steps": 2, "lr": 1e-3}, DIMS)
    optimizers = policy.configure_optimizers([], 10)
    assert optimizers[0].defaults["betas"] == (0.95, 0.999)
    lrs = [policy.update({**_obs(4), "actions": torch.zeros(4, 4, 2)}, optimizers, s)["lr"] for s in range(1, 11)]
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))


def test_actions_are_min_max_normalised_and_a_constant_dimension_sits_at_the_centre():
    policy = make_policy("dp_conv", TINY_CONV, DIMS)
    actions = torch.tensor([[0.2, -1.0], [0.6, -1.0], [0.4, -1.0]])
    policy.fit_actions(actions)
    x = policy.normalize_actions(actions)
    torch.testing.assert_close(x[:, 0], torch.tensor([-1.0, 1.0, 0.0]))
    torch.testing.assert_close(x[:, 1], torch.zeros(3))  # not -1, the sampler's clipping boundary
    torch.testing.assert_close(policy.unnormalize_actions(x), actions)
    assert "action_min" in policy.state_dict()  # saved with the policy, so a loaded agent acts alike


def test_transformer_decays_only_weight_matrices():
    policy = make_policy("dp_transformer", {"n_layer": 1, "n_emb": 32}, DIMS)
    decay, no_decay = policy.parameter_groups()
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    names = {n for n, p in policy.net.named_parameters() if id(p) in decayed}
    assert "pos_emb" not in names and "cond_pos_emb" not in names
    assert not any(n.endswith("bias") or ".norm" in n or n.startswith("ln.") for n in names)
    assert any(n.endswith("in_proj_weight") for n in names) and "head.weight" in names
    assert policy.configure_optimizers([], 10)[0].defaults["betas"] == (0.9, 0.95)


def test_training_windows_repeat_at_most_action_horizon_minus_one_final_actions(bimodal, tmp_path):
    from vfmbench.agents import make_agent
    from vfmbench.training.trainer import Trainer

    config = {**TINY["dp_conv"], "obs_horizon": 2, "pred_horizon": 8, "action_horizon": 4}
    spec = RunSpec(task="bimodal", encoder="state", method="dp_conv", method_config=config)
    agent = make_agent("state", "dp_conv", bimodal.spaces, method_config_data=config)
    trainer = Trainer(spec, bimodal, tmp_path / "run", progress=False)
    data = trainer._prepare(agent)
    starts = data["window_starts"]
    last = max(agent.policy.action_offsets)
    beyond = starts + last - (data["ends"][starts] - 1)
    assert beyond.max() == 3  # action_horizon - 1 = 3 repeated final actions at most
    assert len(starts) == 40 * (20 - (last - 3))  # every other start is kept
