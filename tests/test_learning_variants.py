"""A jointly trained encoder is tested by learning: it must change, and it must matter.

The task is one only a trained encoder solves: 32x32 frames of random colour noise with a
small red marker (3x3 pixels) at a random place; the action is the marker's position. The
`e2e_cnn` encoder (spatial softmax) trained jointly with BC finds the marker; the same
network frozen at its random initialisation does not expose it (its keypoints follow the
noise), so BC on it stays at the variance of the actions. The broken variant is the one that
passed the whole suite before: an optimiser that never steps the encoder. Every method is
also checked to step a jointly trained encoder (every one of its parameter tensors moves).

Inverse IQL's loss terms are tested in tests/test_policy_iql.py; docs/learning_tests.md lists
which broken variant each learning test catches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from vfmbench.data.episodes import EpisodeWriter
from vfmbench.policies.base import Policy
from vfmbench.training import RunSpec, TrainConfig, Trainer, build_agent, load_agent
from vfmbench.utils.seeding import seed_everything

RES = 32
BC = {"hidden": [64], "head": [64], "lr": 3e-3, "batch_size": 64}
TASK = {"task": "marker", "state_dim": 1, "proprio_dim": 0, "action_dim": 2, "goal_conditioned": False,
        "resolution": RES}


def _frames(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n noise frames ``[n, RES, RES, 3]`` with a red 3x3 marker; actions: its (x, y) in [-1, 1]."""
    images = rng.integers(0, 256, (n, RES, RES, 3), dtype=np.uint8)
    centres = rng.integers(1, RES - 1, (n, 2))  # (x, y) of the marker's centre
    for img, (x, y) in zip(images, centres):
        img[y - 1 : y + 2, x - 1 : x + 2] = (255, 0, 0)
    return images, (centres / (RES - 1) * 2 - 1).astype(np.float32)


@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path_factory.mktemp("marker") / "data", {"task": TASK})
    for ep in range(50):
        images, actions = _frames(rng, 20)
        w.append({"pixels": images, "actions": actions, "state": np.zeros((20, 1), np.float32),
                  "proprio": np.zeros((20, 0), np.float32)}, {}, {"seed": ep})
    return w.finalize()


def _initial_encoder(spec: RunSpec, dataset) -> dict[str, torch.Tensor]:
    """The encoder's weights before training: the trainer seeds, then builds the agent."""
    seed_everything(spec.seed)
    return {k: v.clone() for k, v in build_agent(spec, dataset.spaces).encoder.state_dict().items()}


def _moved(before: dict[str, torch.Tensor], agent) -> dict[str, float]:
    """Largest change of each encoder parameter tensor."""
    return {k: (p.detach() - before[k]).abs().max().item() for k, p in agent.encoder.named_parameters()}


def _train_marker(dataset, run_dir, steps: int = 200) -> tuple[float, dict[str, float]]:
    """Train BC jointly with `e2e_cnn`; return the held-out error relative to the actions'
    variance and how far each encoder parameter moved from its initialisation."""
    # no random shift: it would move the marker without moving the action
    spec = RunSpec(task="marker", encoder="e2e_cnn", method="bc", method_config=BC,
                   train=TrainConfig(steps=steps, log_every=50, augment="none"))
    before = _initial_encoder(spec, dataset)
    Trainer(spec, dataset, run_dir, progress=False).run()
    agent, _ = load_agent(run_dir)
    images, actions = _frames(np.random.default_rng(1), 300)
    with torch.no_grad():
        features = agent.encoder(torch.from_numpy(images))[:, None]
        pred = agent.policy.act({"features": features, "proprio": torch.zeros(300, 1, 0)})[:, 0].numpy()
    rel = float(((pred - actions) ** 2).sum(1).mean() / actions.var(0).sum())
    return rel, _moved(before, agent)


def test_jointly_trained_encoder_changes_and_matters_and_fails_when_the_optimiser_skips_it(marker, tmp_path,
                                                                                         monkeypatch):
    rel, moved = _train_marker(marker, tmp_path / "joint")
    assert min(moved.values()) > 0, moved  # every encoder tensor was stepped
    assert rel < 0.2, rel  # measured about 0.05: the trained keypoints find the marker

    configure = Policy.configure_optimizers
    monkeypatch.setattr(Policy, "configure_optimizers", lambda self, encoder_params, total_steps: configure(self, [], total_steps))
    rel, moved = _train_marker(marker, tmp_path / "frozen")
    assert max(moved.values()) == 0, moved  # the initialisation above is the trainer's
    assert rel > 0.6, rel  # measured about 1: random keypoints do not expose the marker


TINY: dict[str, dict[str, Any]] = {
    "bc": {"hidden": [32], "head": [32]},
    "gaussian_bc": {"hidden": [32], "head": [32]},
    "inverse_iql": {"actor_hidden": [32], "critic_hidden": [32], "value_hidden": [32], "value_samples": 2},
    "bc_rnn": {"hidden_dim": 32, "num_layers": 1, "seq_len": 4},
    "dp_conv": {"down_dims": [16, 32], "step_embed_dim": 16, "kernel_size": 3, "obs_horizon": 2, "pred_horizon": 4,
                "action_horizon": 2, "warmup_steps": 1, "inference_steps": 2},
    "dp_transformer": {"n_layer": 1, "n_emb": 32, "obs_horizon": 2, "pred_horizon": 4, "action_horizon": 2,
                       "warmup_steps": 1, "inference_steps": 2},
}


@pytest.mark.parametrize("method", list(TINY))
def test_every_method_steps_a_jointly_trained_encoder(marker, tmp_path, method):
    spec = RunSpec(task="marker", encoder="e2e_cnn", method=method,
                   method_config={**TINY[method], "batch_size": 8, "lr": 1e-3},
                   train=TrainConfig(steps=3, log_every=3))
    before = _initial_encoder(spec, marker)
    Trainer(spec, marker, tmp_path / method, progress=False).run()
    agent, _ = load_agent(tmp_path / method)
    moved = _moved(before, agent)
    assert min(moved.values()) > 0, {k: v for k, v in moved.items() if v == 0}
