"""Online RL: the replay buffer's n-step targets and boundaries, resume, presets, masking, a real
DMControl pixel run with resume, and learning tests (slow) against broken variants."""

from __future__ import annotations

import json
import shutil
from typing import Any

import numpy as np
import pytest
import torch

from vfmbench.rl import AgentConfig, ReplayBuffer, RLRunSpec, RLTrainer, preset_overrides
from vfmbench.rl.build import mask_wrappers
from vfmbench.tasks import TASKS, TaskSpec
from vfmbench.tasks.base import StepResult, Task, TaskConfig
from vfmbench.utils.errors import ConfigError, VfmbenchError


# -- replay buffer -------------------------------------------------------------------------------

def _frame(v: int) -> np.ndarray:
    return np.full((2, 2, 3), v, np.uint8)


def _fill(buf: ReplayBuffer, episodes: list[tuple[int, bool]], start: int = 0) -> None:
    """Episodes of (length, ends terminal); frame value = a running counter, reward = 1 each."""
    v = start
    for length, terminal in episodes:
        buf.start_episode(_frame(v))
        for t in range(length):
            v += 1
            buf.add(np.array([t], np.float32), 1.0, terminal and t == length - 1, _frame(v))
        v += 1


def test_nstep_targets_are_exact_at_boundaries():
    buf = ReplayBuffer(100, (2, 2, 3), 1, frame_stack=3, nstep=3, discount=0.5)
    _fill(buf, [(5, False), (2, True)])
    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(50):
        b = buf.sample(32, rng)
        for o, a, r, d, n in zip(b.obs, b.action, b.reward, b.discount, b.next_obs):
            seen[(int(o[0, 0, -1]), float(a[0]))] = (float(r[0]), float(d[0]), int(n[0, 0, -1]), o[0, 0, ::3].tolist())
    # episode 1: frames 0..5, steps t=0..4; a window stops at the episode's last frame (time limit): bootstrap
    assert seen[(0, 0.0)] == (1.75, 0.125, 3, [0, 0, 0])  # 1 + .5 + .25, gamma^3, stack clamps to the first frame
    assert seen[(2, 2.0)] == (1.75, 0.125, 5, [0, 1, 2])
    assert seen[(3, 3.0)] == (1.5, 0.25, 5, [1, 2, 3])  # two rewards left: gamma^2
    assert seen[(4, 4.0)] == (1.0, 0.5, 5, [2, 3, 4])
    # episode 2 (frames 6..8) ends terminal: no bootstrap beyond it, and no stack reaches episode 1
    assert seen[(6, 0.0)] == (1.5, 0.0, 8, [6, 6, 6])
    assert seen[(7, 1.0)] == (1.0, 0.0, 8, [6, 6, 7])
    assert (5, 5.0) not in seen and (8, 1.0) not in seen  # last frames have no transition


def test_ring_never_reads_overwritten_frames():
    buf = ReplayBuffer(10, (2, 2, 3), 1, frame_stack=3, nstep=2, discount=0.9)
    _fill(buf, [(6, False), (6, False)])  # 14 observations in 10 slots: the first 4 are gone
    b = buf.sample(512, np.random.default_rng(1))
    stacks = b.obs[:, 0, 0, ::3]
    assert stacks.min() >= 4
    for s in stacks:  # frames of a stack are consecutive frames of one episode (or the first repeated)
        assert all(x == y or x + 1 == y for x, y in zip(s[:-1], s[1:]))
        assert not (s[0] <= 6 < s[-1])  # never spans the two episodes
    starts = set(b.obs[:, 0, 0, -1].tolist())
    assert {4, 5} & starts == set()  # their stacks would reach overwritten frames 2-3


def test_state_buffer_and_bad_settings():
    buf = ReplayBuffer(20, (3,), 2, nstep=1, discount=0.9)
    with pytest.raises(RuntimeError, match="start_episode"):
        buf.add(np.zeros(2), 0.0, False, np.zeros(3, np.float32))
    buf.start_episode(np.zeros(3, np.float32))
    with pytest.raises(RuntimeError, match="no transition"):
        buf.sample(4, np.random.default_rng(0))
    buf.add(np.ones(2), 2.0, False, np.ones(3, np.float32))
    b = buf.sample(4, np.random.default_rng(0))
    assert b.obs.shape == (4, 3) and b.reward[:, 0].tolist() == [2.0] * 4 and np.allclose(b.discount, 0.9)
    with pytest.raises(ConfigError, match="capacity"):
        ReplayBuffer(4, (3,), 1, nstep=3)


def test_replay_saves_incrementally_and_restores_to_a_checkpoint(tmp_path):
    buf = ReplayBuffer(12, (2, 2, 3), 1, frame_stack=2, nstep=2, discount=0.9)
    _fill(buf, [(4, False)])
    buf.save(tmp_path)
    first = buf.total
    _fill(buf, [(5, False), (4, False)], start=100)
    buf.save(tmp_path, keep_from=first)
    assert len(json.loads((tmp_path / "index.json").read_text())["chunks"]) == 2
    back = ReplayBuffer(12, (2, 2, 3), 1, frame_stack=2, nstep=2, discount=0.9)
    back.load(tmp_path, buf.total, buf.episodes)
    for f in ("obs", "action", "reward", "has_next", "episode", "t"):
        assert np.array_equal(getattr(back, f), getattr(buf, f)), f
    early = ReplayBuffer(12, (2, 2, 3), 1, frame_stack=2, nstep=2, discount=0.9)
    early.load(tmp_path, first, 1)  # as at the earlier checkpoint
    assert early.total == first and not early.has_next[first - 1]
    chunk = sorted(tmp_path.glob("chunk_*"))[-1]
    chunk.unlink()
    with pytest.raises(VfmbenchError, match="missing"):
        ReplayBuffer(12, (2, 2, 3), 1, frame_stack=2, nstep=2, discount=0.9).load(tmp_path, buf.total, buf.episodes)


# -- settings ------------------------------------------------------------------------------------

def test_presets_follow_the_papers():
    assert preset_overrides("drqv2", "drqv2", "dmc_cartpole_swingup") == {}
    assert preset_overrides("drqv2", "drqv2", "dmc_walker_walk") == {"nstep": 1, "batch_size": 512}
    assert preset_overrides("drqv2", "drqv2", "dmc_cheetah_run")["std_steps"] == 500_000
    assert preset_overrides("drqv2", "pieg", "dmc_finger_spin") == {"feature_dim": 256}
    assert preset_overrides("samg", "drqv2", "dmc_finger_spin") == {"lr": 1e-3, "batch_size": 128,
                                                                     "replay_capacity": 500_000}
    c = AgentConfig()
    assert (c.nstep, c.lr, c.batch_size, c.critic_tau, c.std_clip, c.shift_pad, c.frame_stack) == (3, 1e-4, 256, 0.01, 0.3, 4, 3)
    assert c.std(0) == 1.0 and c.std(50_000) == pytest.approx(0.55) and c.std(10**7) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="conv"):
        RLRunSpec(task="dmc_cartpole_swingup", encoder="dinov2_vits14").validate()


def test_mask_maps_to_wrappers():
    assert [w.name for w in mask_wrappers("oracle", {})] == ["gt_mask"]
    assert mask_wrappers(None, {}) == []
    wrappers = mask_wrappers("sam_vit_b", {"reference": "ref.json"})
    assert wrappers[0].name == "samg" and wrappers[0].options == {"segmenter": "sam_vit_b", "reference": "ref.json"}


def test_drqv2_and_pieg_encoders_have_the_papers_shapes():
    from vfmbench.encoders import create_encoder
    from vfmbench.rl.networks import ConvEncoder, FrozenEncoder

    assert ConvEncoder(9, 84).repr_dim == 32 * 35 * 35
    inner = create_encoder("random_resnet18", pretrained=False)
    enc = FrozenEncoder(inner, 3, 84)
    assert enc._features(torch.zeros(2, 84, 84, 9, dtype=torch.uint8)).shape == (2, 4 * 128 * 11 * 11)
    bn = inner.trunk.bn1
    before = bn.running_mean.clone()
    enc.train(True)
    assert bn.training and not inner.trunk.conv1.training
    enc(torch.randint(0, 255, (2, 84, 84, 9), dtype=torch.uint8))
    assert not torch.equal(before, bn.running_mean)  # statistics follow the training frames
    assert not any(p.requires_grad for p in inner.parameters())
    enc.train(False)
    assert not bn.training


# -- toy tasks -----------------------------------------------------------------------------------

class Chase(Task):
    """A point on a line, pushed by the action; reward minus its distance to a target drawn per
    episode; 20 steps. State [position, target]. Pixels (24x24): the point as a white column and
    the target as a red one, so a pixel agent must read both."""

    name, action_dim, state_dim, proprio_dim, max_episode_steps = "rl_chase", 1, 2, 0, 20

    def __init__(self, config: TaskConfig | None = None):
        self.config = config or TaskConfig(resolution=24)

    def _obs(self) -> dict[str, np.ndarray]:
        img = np.zeros((24, 24, 3), np.uint8)
        img[:, int(round((self.p + 1) * 9.5)) + 1, :] = 255
        img[:, int(round((self.g + 1) * 9.5)) + 1, 0] = 255
        return {"pixels": img, "state": np.array([self.p, self.g], np.float32), "proprio": np.zeros(0, np.float32)}

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        self.p, self.g, self.t = rng.uniform(-1, 1), rng.uniform(-1, 1), 0
        return self._obs()

    def step(self, action: np.ndarray) -> StepResult:
        self.p = float(np.clip(self.p + 0.25 * float(np.clip(action, -1, 1)[0]), -1, 1))
        self.t += 1
        return StepResult(self._obs(), -abs(self.p - self.g), False, self.t >= self.max_episode_steps)

    def render(self) -> np.ndarray:
        return self._obs()["pixels"]

    def expert_action(self) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "state_dim": 2, "proprio_dim": 0, "action_dim": 1, "resolution": 24}


if "rl_chase" not in TASKS:
    TASKS.register(TaskSpec("rl_chase", "toy", "a point chasing a target on a line (tests)", lambda cfg: Chase(cfg),
                            action_dim=1, max_episode_steps=20, default_proprio=False, expert=False))


class Choice(Task):
    """A point on a line between a near, small reward and a far, larger one, with discount 0.5:
    after each move (0.5 x action) it earns 1 while at p <= -0.5 and 3 while at p >= 1.5, 0 in
    between; 20 steps from a start drawn in [-2, 2]. From p = 0 (one step from the left region,
    three from the right) the left region is worth 2 and the right one 1.5 with gamma = 0.5, so a
    correct agent goes left there; an agent that bootstraps its 3-step returns with gamma instead
    of gamma ** 3 values them 3.5 and 6.0 and goes right. State [position]."""

    name, action_dim, state_dim, proprio_dim, max_episode_steps = "rl_choice", 1, 1, 0, 20

    def __init__(self, config: TaskConfig | None = None):
        self.config = config or TaskConfig(resolution=24)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"pixels": np.zeros((24, 24, 3), np.uint8), "state": np.array([self.p], np.float32),
                "proprio": np.zeros(0, np.float32)}

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        self.p, self.t = float(np.random.default_rng(seed).uniform(-2, 2)), 0
        return self._obs()

    def step(self, action: np.ndarray) -> StepResult:
        self.p = float(np.clip(self.p + 0.5 * float(np.clip(action, -1, 1)[0]), -2, 2))
        self.t += 1
        reward = 1.0 if self.p <= -0.5 else 3.0 if self.p >= 1.5 else 0.0
        return StepResult(self._obs(), reward, False, self.t >= self.max_episode_steps, info={"position": self.p})

    def render(self) -> np.ndarray:
        return self._obs()["pixels"]

    def expert_action(self) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "state_dim": 1, "proprio_dim": 0, "action_dim": 1, "resolution": 24}


if "rl_choice" not in TASKS:
    TASKS.register(TaskSpec("rl_choice", "toy", "near small or far large reward under discount 0.5 (tests)",
                            lambda cfg: Choice(cfg), action_dim=1, max_episode_steps=20, default_proprio=False,
                            expert=False))


def _spec(frames: int, encoder: str = "state", task: str = "rl_chase", **agent: Any) -> RLRunSpec:
    cfg = dict(lr=1e-3, batch_size=64, feature_dim=32, hidden_dim=64, nstep=3, discount=0.9, std_steps=1500,
               seed_frames=200, explore_frames=200, replay_capacity=20_000, update_every=1, shift_pad=1)
    cfg.update(agent)
    return RLRunSpec(task=task, encoder=encoder, frames=frames, seed=0, device="cpu",
                     agent_config=AgentConfig(**cfg), task_config=TaskConfig(resolution=24), eval_every_frames=0,
                     eval_episodes=20, eval_envs=10, checkpoint_every_frames=200)


def _final_return(spec: RLRunSpec, out) -> float:
    from vfmbench.rl.job import evaluate_run

    RLTrainer(spec, out, progress=False).run()
    return evaluate_run(out, ["none"], episodes=20)[0].mean


def test_training_resumes_with_its_buffer_and_reports_a_lost_one(tmp_path):
    torch.set_num_threads(1)
    first = RLTrainer(_spec(300), tmp_path, progress=False).run()
    assert (first.frames, first.episodes, first.complete) == (300, 15, True)
    again = RLTrainer(_spec(500), tmp_path, progress=False).run()
    assert (again.frames, again.sessions, again.replay_lost) == (500, 2, [])
    assert again.updates > first.updates
    with pytest.raises(ConfigError, match="another run"):
        RLTrainer(_spec(600, nstep=1), tmp_path, progress=False).run()
    shutil.rmtree(tmp_path / "replay")
    lost = RLTrainer(_spec(600), tmp_path, progress=False).run()
    assert lost.frames == 600 and lost.replay_lost and lost.replay_lost[0]["frame"] == 500
    assert "missing" in lost.replay_lost[0]["reason"] or "unreadable" in lost.replay_lost[0]["reason"]


def test_mask_options_name_the_column():
    """Runs masked with different options (e.g. dilated) never share a column of the return table."""
    from vfmbench.rl.job import method_label

    assert method_label("drqv2", "conv", "conv", "oracle") == "DrQ-v2 + SAM-G (oracle)"
    assert method_label("drqv2", "conv", "conv", "oracle", {"fill": 128, "dilate": 2}) == \
        "DrQ-v2 + SAM-G (oracle, dilate=2, fill=128)"
    assert method_label("pieg", "dinov2_vits14", "dinov2_vits14 (random)", None) == "PIE-G [dinov2_vits14 (random)]"
    assert method_label("drqv2", "conv", "conv", "oracle", {"dilate": 0, "fill": 0}) == "DrQ-v2 + SAM-G (oracle)"
    assert method_label("drqv2", "conv", "conv", "sam_vit_b", {"reference": "refs/dmc_walker_walk.json"}) == \
        "DrQ-v2 + SAM-G (sam_vit_b)"  # one column for every task's own reference
    with pytest.raises(ConfigError, match="mask_options .* have no effect without a mask"):
        RLRunSpec(task="rl_chase", mask_options={"dilate": 2}).validate()


def test_dmc_pixels_train_resume_and_evaluate(tmp_path):
    """A real DMControl pixel run: DrQ-v2 on dmc_cartpole_balance, stopped and resumed."""
    from vfmbench.rl.job import evaluate_run, return_table, record_for_run

    torch.set_num_threads(1)
    cfg = AgentConfig(batch_size=8, hidden_dim=32, feature_dim=16, seed_frames=20, explore_frames=20,
                      replay_capacity=500)
    spec = RLRunSpec(task="dmc_cartpole_balance", frames=40, device="cpu", agent_config=cfg, mask="oracle",
                     mask_options={"dilate": 1}, task_config=TaskConfig(max_episode_steps=10), eval_every_frames=0, eval_episodes=2, eval_envs=2,
                     checkpoint_every_frames=20)
    first = RLTrainer(spec, tmp_path, progress=False).run()
    assert first.frames == 40 and first.updates > 0
    spec.frames = 60
    second = RLTrainer(spec, tmp_path, progress=False).run()
    assert (second.frames, second.sessions) == (60, 2)
    results = evaluate_run(tmp_path, ["none", "color_hard"], episodes=2, envs=2)
    assert [r.shift for r in results] == ["none", "color_hard"] and all(len(r.returns) == 2 for r in results)
    table = return_table([record_for_run(tmp_path, ["none", "color_hard"], episodes=2, envs=2)])
    assert list(table) == ["none", "color_hard"] and "DrQ-v2 + SAM-G (oracle, dilate=1)" in table["none"][0]


# -- learning tests ------------------------------------------------------------------------------

class NoTarget:
    """Broken: bootstraps from the online critic (no target network)."""

    def target_critic(self):
        return self.critic


class WrongDiscount:
    """Broken: bootstraps n-step returns with gamma instead of gamma ** n."""

    def target_discount(self, discount):
        return torch.where(discount > 0, torch.full_like(discount, self.config.discount), discount)


class MismatchedAugmentation:
    """Broken: the critic sees shifted frames, the target unshifted ones."""

    def augment_pair(self, obs, next_obs):
        return self.aug(obs), next_obs


def _broken(monkeypatch, mixin) -> None:
    import vfmbench.rl.loop as loop

    build = loop.build_agent

    def patched(*args, **kwargs):
        agent, label, pretrained = build(*args, **kwargs)
        agent.__class__ = type(f"Broken{mixin.__name__}", (mixin, type(agent)), {})
        return agent, label, pretrained

    monkeypatch.setattr(loop, "build_agent", patched)


RANDOM_CHASE = -13.0  # about the return of random actions (mean |p - g| of 2/3 over 20 steps)


_TOO_EASY = pytest.mark.xfail(strict=True, reason="rl_chase is too easy: this broken variant learns it as well "
                                                   "(docs/rl.md); a harder toy problem is needed")


@pytest.mark.slow
@pytest.mark.parametrize("broken", [None, pytest.param(NoTarget, marks=_TOO_EASY)], ids=["correct", "no_target"])
def test_ddpg_nstep_from_state_learns(tmp_path, monkeypatch, broken):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if broken is not None:
        _broken(monkeypatch, broken)
    ret = _final_return(_spec(4000, discount=0.99, critic_tau=0.01, lr=3e-3), tmp_path)
    if broken is None:
        assert ret > -4.0, ret
    else:
        assert ret < -4.0, ret


@pytest.mark.parametrize("broken", [None, WrongDiscount], ids=["correct", "wrong_nstep_discount"])
def test_nstep_discount_decides_the_choice(tmp_path, monkeypatch, broken):
    """rl_choice: at p = 0 the discounted optimum (gamma 0.5) is the near reward on the left;
    bootstrapping 3-step returns with gamma instead of gamma ** 3 makes the far one look better."""
    from vfmbench.rl import load_rl_agent

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if broken is not None:
        _broken(monkeypatch, broken)
    RLTrainer(_spec(3000, task="rl_choice", discount=0.5, nstep=3, std_steps=1000), tmp_path, progress=False).run()
    agent, _, _, _ = load_rl_agent(tmp_path, "cpu")
    at_start, near_right = agent.act(np.array([[0.0], [1.0]], np.float32), 10**6, explore=False)[:, 0]
    assert near_right > 0.5, near_right  # one step from the right region: right under either discount
    if broken is None:
        assert at_start < -0.5, at_start  # the near region
    else:
        assert at_start > 0.5, at_start  # the far region


_LEARNS_ANYWAY = pytest.mark.xfail(strict=True, reason="the unshifted target is one of the random shift's own "
                                   "outcomes: this variant learns rl_chase from pixels too (-2.1, docs/rl.md)")


@pytest.mark.slow
@pytest.mark.parametrize("broken", [None, pytest.param(MismatchedAugmentation, marks=_LEARNS_ANYWAY)],
                         ids=["correct", "mismatched_augmentation"])
def test_drqv2_from_pixels_learns(tmp_path, monkeypatch, broken):
    torch.set_num_threads(1)
    if broken is not None:
        _broken(monkeypatch, broken)
    ret = _final_return(_spec(4000, encoder="conv", hidden_dim=64, frame_stack=1), tmp_path)
    if broken is None:
        assert ret > -5.0, ret
    else:
        assert ret < -5.0, ret


def test_collect_with_a_trained_agent_as_expert(tmp_path, capsys):
    """`vfmbench collect --expert RUN`: the run's agent writes a dataset in collect's format."""
    from vfmbench.cli import app
    from vfmbench.data.collection import open_dataset

    torch.set_num_threads(1)
    RLTrainer(_spec(300), tmp_path / "run", progress=False).run()
    assert app(["collect", "--expert", str(tmp_path / "run"), "--episodes", "2", "--out", str(tmp_path / "d"),
                "--no-progress"]) == 0
    ds = open_dataset(tmp_path / "d")
    assert (ds.num_episodes, ds.n_frames) == (2, 40) and ds.load("actions").shape == (40, 1)
    assert ds.load("pixels").shape == (40, 24, 24, 3) and ds.manifest["mean_return"] < 0
    assert app(["collect", "--expert", str(tmp_path / "run"), "--episodes", "1", "--resolution", "32",
                "--out", str(tmp_path / "e")]) == 2
    assert "--resolution cannot be combined" in capsys.readouterr().err
    assert app(["collect", "--episodes", "1", "--out", str(tmp_path / "f")]) == 2
    assert "needs --task" in capsys.readouterr().err
