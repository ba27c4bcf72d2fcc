"""The agent owns acting: history, goal and action queue are interpreted in `Agent.act` alone.

The reference below is the rollout logic the evaluator ran inline before agents existed; the
agent must give the same actions for every method (observation histories, action chunks,
recurrent state), on the same random numbers."""

import numpy as np
import pytest
import torch

from vfmbench.agents import make_agent
from vfmbench.policies import list_methods
from vfmbench.tasks import TaskSpaces

TINY = {
    "bc": {"hidden": [32], "head": [32]},
    "gaussian_bc": {"hidden": [32], "head": [32]},
    "inverse_iql": {"actor_hidden": [32], "critic_hidden": [32], "value_hidden": [32]},
    "bc_rnn": {"hidden_dim": 16, "num_layers": 1, "seq_len": 3},
    "dp_conv": {"down_dims": [16, 32], "step_embed_dim": 16, "obs_horizon": 3, "pred_horizon": 8,
                "action_horizon": 4, "inference_steps": 4},
    "dp_transformer": {"n_layer": 1, "n_emb": 32, "obs_horizon": 2, "pred_horizon": 8, "action_horizon": 3,
                       "inference_steps": 4},
}


def _agent(method: str, goal: bool):
    spaces = TaskSpaces(action_dim=3, state_dim=5, proprio_dim=2, goal_conditioned=goal)
    torch.manual_seed(0)
    agent = make_agent("state", method, spaces, method_config_data={**TINY[method], "goal_conditioned": goal})
    with torch.no_grad():  # fitted statistics, so normalisation is not the identity
        agent.feature_norm.mean.uniform_(-1, 1)
        agent.feature_norm.std.uniform_(0.5, 2)
        agent.proprio_norm.mean.uniform_(-1, 1)
        agent.proprio_norm.std.uniform_(0.5, 2)
    return agent.eval()


def _observations(steps: int, b: int, goal: bool):
    rng = np.random.default_rng(1)
    obs = []
    for _ in range(steps):
        o = {"state": rng.normal(size=(b, 5)).astype(np.float32), "proprio": rng.normal(size=(b, 2)).astype(np.float32)}
        if goal:
            o["goal_state"] = np.repeat(rng.normal(size=(1, 5)).astype(np.float32), b, 0)
        obs.append(o)
    if goal:  # the goal is fixed within an episode
        for o in obs:
            o["goal_state"] = obs[0]["goal_state"]
    return obs


@torch.inference_mode()
def _reference_rollout(agent, observations):
    """The evaluator's inline logic before agents (history, goal, action queue)."""
    policy = agent.policy
    b = observations[0]["state"].shape[0]
    policy.reset(b)
    feats = agent.encode(torch.from_numpy(observations[0]["state"]))
    prop = agent.proprio_norm(torch.from_numpy(observations[0]["proprio"]).float())
    hist_f = feats[:, None].repeat(1, policy.history, 1)
    hist_p = prop[:, None].repeat(1, policy.history, 1)
    goal_f = agent.encode(torch.from_numpy(observations[0]["goal_state"])) if policy.dims.goal_conditioned else None
    queue, qi, actions = None, 0, []
    for t in range(len(observations)):
        if queue is None or qi >= queue.shape[1]:
            inp = {"features": hist_f, "proprio": hist_p}
            if goal_f is not None:
                inp["goal"] = goal_f
            queue = policy.act(inp).float().cpu()
            qi = 0
        actions.append(queue[:, qi].numpy())
        qi += 1
        if t + 1 < len(observations):
            nxt = observations[t + 1]
            feats = agent.encode(torch.from_numpy(nxt["state"]))
            prop = agent.proprio_norm(torch.from_numpy(nxt["proprio"]).float())
            hist_f = torch.cat([hist_f[:, 1:], feats[:, None]], 1)
            hist_p = torch.cat([hist_p[:, 1:], prop[:, None]], 1)
    return np.stack(actions)


@pytest.mark.parametrize("goal", [False, True])
@pytest.mark.parametrize("method", list_methods())
def test_agent_act_matches_the_inline_rollout_logic(method, goal):
    agent = _agent(method, goal)
    observations = _observations(11, 3, goal)
    torch.manual_seed(7)
    expected = _reference_rollout(agent, observations)
    torch.manual_seed(7)
    agent.reset(3)
    got = np.stack([agent.act(o) for o in observations])
    assert got.shape == (11, 3, 3)
    np.testing.assert_array_equal(got, expected)
    # a second episode starts afresh: same observations, same actions
    torch.manual_seed(7)
    agent.reset(3)
    np.testing.assert_array_equal(np.stack([agent.act(o) for o in observations]), expected)


def test_agent_reads_only_its_observation_keys_and_acts_on_its_device():
    agent = _agent("bc", goal=True)
    assert agent.observation_keys == ("state", "proprio", "goal_state")
    assert agent.device == torch.device("cpu")
    obs = _observations(1, 2, True)[0]
    agent.reset(2)
    a = agent.act({**obs, "pixels": None})  # extra entries are ignored
    assert a.shape == (2, 3) and a.dtype == np.float32


def test_action_chunks_are_executed_before_the_policy_is_asked_again():
    agent = _agent("dp_conv", goal=False)
    calls = []
    original = agent.policy.act
    agent.policy.act = lambda batch, generator=None: calls.append(batch["features"].shape) or original(batch, generator)
    agent.reset(2)
    for o in _observations(9, 2, False):
        agent.act(o)
    assert len(calls) == 3 and calls[0] == (2, 3, 5)  # chunks of 4: steps 0, 4, 8; history of 3


@pytest.mark.sim
def test_sampling_policies_are_repeatable_and_paired_under_shifts_they_do_not_see():
    """A diffusion policy on privileged state: the same seeds give the same returns, and a
    visual-only shift changes nothing (its noise comes from the episode seeds, not a global
    generator whose draws depend on what ran before)."""
    from vfmbench.evaluation import evaluate
    from vfmbench.evaluation.robustness import evaluate_shifts
    from vfmbench.tasks import make_task

    cfg = {"resolution": 32, "max_episode_steps": 6}
    with make_task("fetch_reach", cfg) as task:
        spaces = task.spaces
    torch.manual_seed(0)
    agent = make_agent("state", "dp_conv", spaces, method_config_data=TINY["dp_conv"]).eval()
    first = evaluate(agent, "fetch_reach", cfg, episodes=3, n_envs=3, progress=False)
    torch.randn(100)  # the global generator moves on between evaluations
    again = evaluate(agent, "fetch_reach", cfg, episodes=3, n_envs=2, progress=False)  # other batches, too
    assert again.returns == first.returns
    for shift in ("color_hard", "distractor"):
        shifted = evaluate(agent, "fetch_reach", cfg, episodes=3, n_envs=3, progress=False, shift=shift)
        assert shifted.returns == first.returns
    report = evaluate_shifts(agent, "fetch_reach", cfg, ["distractor"], episodes=3, n_envs=3, progress=False)
    assert report.results[1].drop == 0.0 and report.results[1].drop_se == 0.0


@pytest.mark.sim
@pytest.mark.parametrize("task", ["fetch_reach", "dmc_cartpole_balance"])
def test_evaluation_envs_kept_for_the_next_job_give_the_episodes_of_new_ones(task):
    """A job's evaluation environments are reused by the next job of the process (same task and
    config): after other episodes, a pixel policy sees the same episodes as on new instances."""
    from vfmbench.evaluation import evaluate
    from vfmbench.experiments.job import _eval_envs
    from vfmbench.tasks import TaskConfig, make_task

    cfg = TaskConfig(resolution=32, max_episode_steps=6, reward="dense" if task.startswith("fetch") else None)
    with make_task(task, cfg) as env:
        spaces = env.spaces
    torch.manual_seed(0)
    agent = make_agent("e2e_cnn", "bc", spaces).eval()  # random weights: actions that depend on every pixel
    envs = _eval_envs(task, cfg, 2)
    evaluate(agent, task, cfg, episodes=3, seed=7, envs=envs, progress=False)  # other episodes first
    again = _eval_envs(task, cfg, 2)
    assert again[0] is envs[0] and again[1] is envs[1]
    reused = evaluate(agent, task, cfg, episodes=2, seed=1000, envs=again, progress=False)
    fresh = evaluate(agent, task, cfg, episodes=2, seed=1000, n_envs=2, progress=False)
    assert reused.returns == fresh.returns and reused.successes == fresh.successes
    assert len(set(reused.returns)) == 2  # continuous returns, different per episode
    assert _eval_envs(task, TaskConfig(resolution=24, max_episode_steps=6), 1)[0] is not envs[0]  # another config
