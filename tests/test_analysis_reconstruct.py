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
    argv = ["analyze", "reconstruct", "--encoders", "state,random_resnet18", "--dataset",
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
    assert app([*base, "--encoders", "state", "--dataset", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert app([*base, "--encoders", "nope", "--dataset", str(reach_short.root)]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    assert app([*base, "--encoders", "e2e_cnn", "--dataset", str(reach_short.root)]) == 2
    assert "frozen encoder" in capsys.readouterr().err
    assert app([*base, "--encoders", "state", "--dataset", str(reach_short.root), "--resolution", "4"]) == 2
    assert "resolution" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_analyze_command_takes_encoders_comma_separated_and_device_auto():
    """Defect: reconstruct took repeated --encoder E while phid and vat took --encoders A,B, and
    saliency's --device defaulted to cpu."""
    import argparse

    from vfmbench.cli import analyze

    root = argparse.ArgumentParser()
    analyze.register(root.add_subparsers())
    parse = root.parse_args
    rec = parse(["analyze", "reconstruct", "--encoders", "state,random_resnet18", "--dataset", "d", "--out", "o"])
    phid = parse(["analyze", "phid", "--encoders", "state,random_resnet18", "--out", "o"])
    vat = parse(["analyze", "vat", "--encoders", "e2e_cnn,imagenet_efficientnet_lite0", "--out", "o"])
    assert rec.encoders == phid.encoders == ["state", "random_resnet18"]
    assert vat.encoders == ["e2e_cnn", "imagenet_efficientnet_lite0"]
    # the old spelling still reads as the new one, repeated or comma-separated
    assert parse(["analyze", "reconstruct", "--encoder", "state", "--encoder", "random_resnet18", "--dataset", "d",
                  "--out", "o"]).encoders == ["state", "random_resnet18"]
    assert parse(["analyze", "reconstruct", "--encoder", "state,random_resnet18", "--dataset", "d",
                  "--out", "o"]).encoders == ["state", "random_resnet18"]
    for argv in (["reconstruct", "--encoders", "s", "--dataset", "d"], ["phid", "--encoders", "s"], ["vat"],
                 ["saliency", "--run", "r"]):
        assert parse(["analyze", *argv, "--out", "o"]).device == "auto", argv


def test_hints_name_the_commands_own_options(reach_short, tmp_path, capsys, monkeypatch):
    """Defect: hints said train.device=cpu and create_encoder(..., pretrained=False) (Python)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["analyze", "reconstruct", "--out", str(tmp_path / "out"), "--dataset", str(reach_short.root)]
    assert app([*base, "--encoders", "state", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "use --device cpu or --device auto" in err and "train.device" not in err
    for argv in ([*base, "--encoders", "imagenet_resnet18", "--device", "cpu"],
                 ["analyze", "phid", "--encoders", "imagenet_resnet18", "--out", str(tmp_path / "out"),
                  "--device", "cpu"]):
        assert app(argv) == 2  # no weights installed in the test home
        err = capsys.readouterr().err
        assert "for random weights pass --random-weights" in err and "create_encoder" not in err, err
    assert app(["analyze", "vat", "--out", str(tmp_path / "out"), "--encoders", "imagenet_resnet18"]) == 2
    err = capsys.readouterr().err
    assert "--random-weights" in err and "create_encoder" not in err, err
    assert not (tmp_path / "out").exists()


def test_read_record_names_the_file_for_every_fault(reach_short, tmp_path):
    """Defect: a wrong-schema record's error left out the path, a PHID0 record saved as
    reconstruct.json was accepted, and a missing figure went unnoticed."""
    from vfmbench.analysis.records import md_cell, missing_figures, read_record
    from vfmbench.utils.errors import DatasetError

    out = tmp_path / "rec"
    assert app(["analyze", "reconstruct", "--encoders", "state", "--dataset", str(reach_short.root), "--out", str(out),
                "--epochs", "1", "--resolution", "8", "--hidden", "16", "--device", "cpu", "--no-progress"]) == 0
    good = json.loads((out / "reconstruct.json").read_text())
    record = read_record(out / "reconstruct.json")
    assert missing_figures(record, out) == []
    (out / "reconstruct.png").unlink()
    assert missing_figures(record, out) == ["reconstruct.png"]
    bad = tmp_path / "bad" / "reconstruct.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({**good, "schema": "vfmbench.analysis.reconstruct/9"}))
    with pytest.raises(DatasetError, match=f"^{bad}: not a reconstruction record"):
        read_record(bad)
    bad.write_text(json.dumps({"schema": "vfmbench.analysis.reconstruct/1", "results": [{}]}))
    with pytest.raises(DatasetError, match=f"^{bad}: "):
        read_record(bad)
    bad.write_text(json.dumps({"schema": "vfmbench.analysis.phid/1"}))
    with pytest.raises(DatasetError, match="named for the 'reconstruct' analysis but holds a 'phid' record"):
        read_record(bad)
    assert md_cell("a | b\nc") == "a \\| b c"
