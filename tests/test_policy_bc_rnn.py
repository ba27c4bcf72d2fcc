"""BC-RNN is tested by learning a task that needs memory: the action is the observation of
three steps earlier. Within 10-step training windows the LSTM can recall it; a variant whose
hidden state is reset at every step (no recurrence) cannot, and neither can memoryless BC."""

import json

import numpy as np
import pytest
import torch

from vfmbench.data.episodes import EpisodeWriter
from vfmbench.policies.bc_rnn import BCRNNPolicy
from vfmbench.training import RunSpec, TrainConfig, Trainer, load_agent

DELAY = 3
SMALL = {"hidden_dim": 64, "num_layers": 1, "lr": 3e-3, "batch_size": 64}


def _delayed(x: np.ndarray) -> np.ndarray:
    a = np.zeros_like(x)
    a[DELAY:] = np.tanh(x[:-DELAY])
    return a


@pytest.fixture(scope="module")
def delayed_copy(tmp_path_factory):
    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path_factory.mktemp("rnn") / "data", {"task": {
        "task": "delayed_copy", "state_dim": 2, "proprio_dim": 0, "action_dim": 2, "goal_conditioned": False}})
    for ep in range(40):
        x = rng.normal(size=(30, 2)).astype(np.float32)
        w.append({"state": x, "actions": _delayed(x), "proprio": np.zeros((30, 0), np.float32)}, {}, {"seed": ep})
    return w.finalize()


def _train(dataset, run_dir, method="bc_rnn", config=SMALL, steps=300):
    spec = RunSpec(task="delayed_copy", encoder="state", method=method, method_config=config,
                   train=TrainConfig(steps=steps, log_every=50))
    Trainer(spec, dataset, run_dir, progress=False).run()
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["mse"]


def test_bc_rnn_remembers_and_memoryless_variants_do_not(delayed_copy, tmp_path, monkeypatch):
    var = float(np.mean(np.tanh(np.random.default_rng(1).normal(size=100_000)) ** 2))  # ~0.39
    good = _train(delayed_copy, tmp_path / "rnn")
    # positions 0-2 of a window cannot be predicted (their inputs lie before it): floor ~0.3 var
    assert good < 0.45 * var, (good, var)

    # deployed step by step: the hidden state carries the cue; robomimic's reset every seq_len
    # steps makes steps 10, 11, 12 (and 20, 21, 22) unpredictable, as in training
    agent, _ = load_agent(tmp_path / "rnn")
    policy = agent.policy
    x = np.random.default_rng(2).normal(size=(8, 30, 2)).astype(np.float32)
    feats = agent.feature_norm(torch.from_numpy(x))
    policy.reset(8)
    with torch.no_grad():
        pred = torch.cat([policy.act({"features": feats[:, t : t + 1], "proprio": torch.zeros(8, 1, 0)})
                          for t in range(30)], 1).numpy()
    target = np.stack([_delayed(e) for e in x])
    recall = [t for t in range(30) if t % 10 >= DELAY]
    assert np.mean((pred[:, recall] - target[:, recall]) ** 2) < 0.3 * var

    def no_recurrence(self, batch, hidden=None):
        steps = [BCRNNPolicy.step_inputs({k: (v[:, t : t + 1] if v.dim() == 3 else v) for k, v in batch.items()})
                 for t in range(batch["features"].shape[1])]
        y = torch.cat([self.rnn(s)[0] for s in steps], 1)
        return torch.tanh(self.out(y)), None

    monkeypatch.setattr(BCRNNPolicy, "forward", no_recurrence)
    broken = _train(delayed_copy, tmp_path / "broken")
    assert broken > 0.8 * var, (broken, var)
