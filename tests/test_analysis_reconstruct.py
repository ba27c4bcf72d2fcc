"""Reconstruction (paper 000 §7.1, A.3): decoders from embeddings back to frames learn, an
informative embedding reconstructs held-out episodes better than an uninformative one, and
`vfmbench analyze reconstruct` runs end to end on a real fetch_reach dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vfmbench.analysis.reconstruct import DecoderConfig, episode_split, fit_decoder, mean_frame_mse, resize_frames
from vfmbench.cli import app

SMALL = DecoderConfig(hidden=(256, 512), resolution=32, epochs=20)


@pytest.fixture(scope="module")
def reach_short(tmp_path_factory):
    """40 fetch_reach episodes of 10 steps at 32x32 (many goals, few frames: cheap to collect)."""
    from vfmbench.data.collection import CollectConfig, collect
    from vfmbench.tasks import TaskConfig

    config = CollectConfig(task="fetch_reach", episodes=40, keep_failures=True,
                           task_config=TaskConfig(resolution=32, max_episode_steps=10))
    return collect(config, tmp_path_factory.mktemp("data") / "reach_short", progress=False)


def test_episode_split_holds_out_whole_episodes():
    train, test = episode_split(10, 0.2, seed=0)
    assert len(test) == 2 and len(train) == 8 and not set(train) & set(test)
    assert episode_split(10, 0.2, seed=0)[1].tolist() == test.tolist()
    assert len(episode_split(3, 0.01, seed=0)[1]) == 1


def test_state_decoder_beats_an_uninformative_one_on_held_out_episodes(reach_short):
    episode = reach_short.episode_index()
    targets = resize_frames(reach_short.load("pixels"), SMALL.resolution)
    train, test = episode_split(reach_short.num_episodes, SMALL.holdout, SMALL.seed)
    state = reach_short.load("state")
    noise = np.random.default_rng(0).normal(size=state.shape).astype(np.float32)  # carries nothing of the frame
    informed = fit_decoder(state, targets, episode, train, test, SMALL, progress=False)
    blind = fit_decoder(noise, targets, episode, train, test, SMALL, progress=False)
    baseline = mean_frame_mse(targets, np.flatnonzero(np.isin(episode, train)), np.flatnonzero(np.isin(episode, test)))
    assert informed.losses[-1] < 0.5 * informed.losses[0]  # it learns
    assert informed.test_mse < 0.8 * baseline  # and generalises to unseen episodes (goals)
    assert informed.test_mse < 0.7 * blind.test_mse, (informed.test_mse, blind.test_mse, baseline)
    assert blind.test_mse > 0.9 * baseline  # noise cannot beat the mean frame on new episodes


def test_cli_end_to_end(reach_short, tmp_path, capsys):
    from vfmbench.analysis.records import read_record

    out = tmp_path / "rec"
    argv = ["analyze", "reconstruct", "--encoder", "state", "--encoder", "random_resnet18", "--dataset",
            str(reach_short.root), "--out", str(out), "--epochs", "2", "--resolution", "16", "--hidden", "64,128",
            "--device", "cpu", "--no-progress", "--figure-episodes", "2"]
    assert app(argv) == 0
    data = json.loads((out / "reconstruct.json").read_text())
    assert data["schema"] == "vfmbench.analysis.reconstruct/1"
    record = read_record(out / "reconstruct.json")
    assert record.to_dict() == data and record.figures == ["reconstruct.png"]
    assert (out / "reconstruct.png").stat().st_size > 0
    assert [r.encoder for r in record.results] == ["state", "random_resnet18"]
    assert record.results[1].embed_dim == 512 and record.config.resolution == 16
    assert len(record.test_episodes) == 8 and not set(record.test_episodes) & set(record.train_episodes)
    assert record.test_frames == 80 and all(r.test_mse > 0 for r in record.results)
    assert "| random_resnet18 | 512 |" in record.markdown()


def test_cli_errors_name_what_to_do(reach_short, tmp_path, capsys):
    base = ["analyze", "reconstruct", "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert app([*base, "--encoder", "state", "--dataset", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert app([*base, "--encoder", "nope", "--dataset", str(reach_short.root)]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    assert app([*base, "--encoder", "e2e_cnn", "--dataset", str(reach_short.root)]) == 2
    assert "frozen encoder" in capsys.readouterr().err
    assert app([*base, "--encoder", "state", "--dataset", str(reach_short.root), "--resolution", "4"]) == 2
    assert "resolution" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
