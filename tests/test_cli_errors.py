"""Errors a new user meets, each one line that names the key and says what to do in the command's own
options: encoder options an encoder does not take, hints written for Python, missing datasets, checkpoint
steps that do not exist, shift options in the other spelling, a demo without the weights it needs; and
the robustness command's budget line and plot."""

from __future__ import annotations

import pytest

from vfmbench.cli import app


@pytest.fixture(scope="module")
def reach(tmp_path_factory):
    """4 fetch_reach episodes of 10 steps at 32x32."""
    from vfmbench.data.collection import CollectConfig, collect
    from vfmbench.tasks import TaskConfig

    config = CollectConfig(task="fetch_reach", episodes=4, task_config=TaskConfig(resolution=32, max_episode_steps=10))
    return collect(config, tmp_path_factory.mktemp("data") / "reach", progress=False)


@pytest.fixture(scope="module")
def state_run(reach, tmp_path_factory):
    """A state BC run of 4 steps (its kept checkpoint: step 4)."""
    out = tmp_path_factory.mktemp("runs") / "state"
    assert app(["train", "--dataset", str(reach.root), "--encoder", "state", "--out", str(out), "--no-eval",
                "--no-progress", "--set", "train.steps=4", "--set", "train.checkpoint_every=2",
                "--set", "train.device=cpu"]) == 0
    return out


def _error(argv, capsys) -> str:
    assert app([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vfmbench: error: "), err
    return err


def test_an_encoder_option_the_encoder_lacks_is_one_line_naming_its_options(reach, tmp_path, capsys):
    """Defect: pooling=max on a ResNet ended in a TypeError's text; the options were not named."""
    from vfmbench.encoders import create_encoder
    from vfmbench.utils.errors import ConfigError

    err = _error(["train", "--dataset", reach.root, "--encoder", "state", "--out", tmp_path / "run", "--no-eval",
                  "--set", "encoder_options.pooling=max"], capsys)
    assert err.count("\n") == 1, err
    assert "encoder 'state': bad encoder_options: no option 'pooling'; its options: none" in err, err
    err = _error(["embed", "--encoder", "random_resnet18", "--dataset", reach.root, "--pooling", "max",
                  "--out", tmp_path / "cache"], capsys)
    assert "no option 'pooling'; its options: seed" in err, err
    with pytest.raises(ConfigError, match=r"'imagenet_resnet18': bad encoder_options: no option 'pooling'; "
                                          r"its options: fc_out, full_frame, seed, tiny, weights"):
        create_encoder("imagenet_resnet18", pooling="max")  # refused before looking for the weights
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_every_encoder_says_which_options_it_takes():
    from vfmbench.encoders import list_encoders
    from vfmbench.encoders._registry import encoder_options

    options = {name: encoder_options(name) for name in list_encoders()}
    assert all(v is not None for v in options.values()), options
    assert "pooling" in options["dinov2_vits14"] and "pooling" in options["sam_vit_b"]
    assert options["e2e_cnn"] == ("channels", "num_kp") and options["state"] == ()


def test_hints_name_the_commands_options_not_python(reach, tmp_path, capsys, monkeypatch):
    """Defect: train and embed said create_encoder(..., pretrained=False) and train.device=cpu."""
    import torch

    err = _error(["train", "--dataset", reach.root, "--encoder", "imagenet_resnet18", "--out", tmp_path / "r"],
                 capsys)  # no weights in the test home
    assert "for random weights pass --random-weights" in err and "create_encoder" not in err, err
    err = _error(["embed", "--encoder", "imagenet_resnet18", "--dataset", reach.root, "--device", "cpu"], capsys)
    assert "for random weights pass --random-weights" in err and "create_encoder" not in err, err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _error(["train", "--dataset", reach.root, "--encoder", "state", "--out", tmp_path / "r",
                  "--set", "train.device=cuda"], capsys)
    assert "use --set train.device=cpu (or auto)" in err, err
    err = _error(["embed", "--encoder", "state", "--dataset", reach.root, "--device", "cuda"], capsys)
    assert "use --device cpu or --device auto" in err and "train.device" not in err, err


def test_missing_datasets_are_named_as_given_with_a_complete_collect_command(tmp_path, capsys, monkeypatch):
    """Defect: embed named the missing relative folder inside VFMBENCH_HOME; the hint lacked --task."""
    monkeypatch.chdir(tmp_path)
    err = _error(["embed", "--encoder", "state", "--dataset", "data/nope"], capsys)
    assert err.startswith("vfmbench: error: dataset folder data/nope does not exist"), err
    assert "vfmbench collect --task TASK --out data/nope" in err
    (tmp_path / "empty").mkdir()
    err = _error(["train", "--dataset", "empty", "--encoder", "state", "--out", "run"], capsys)
    assert "manifest.json is missing" in err and "vfmbench collect --task TASK --out empty" in err, err


@pytest.mark.parametrize("command", ["evaluate", "robustness"])
def test_a_missing_step_lists_the_steps_there_are(state_run, capsys, command):
    err = _error([command, "--run", state_run, "--step", "3"], capsys)
    assert "no checkpoint for --step 3; its checkpoints are at steps 4" in err, err


def test_shift_options_have_one_spelling(state_run, capsys):
    """Defect: evaluate took count=3, robustness distractor.count=3; options of other shifts were ignored."""
    err = _error(["evaluate", "--run", state_run, "--shift", "distractor", "--shift-set", "count=3"], capsys)
    assert "e.g. --shift-set distractor.count=3" in err, err
    err = _error(["evaluate", "--run", state_run, "--shift-set", "distractor.count=3"], capsys)
    assert "does not render (it renders: none)" in err, err
    err = _error(["robustness", "--run", state_run, "--shifts", "distractor", "--shift-set", "distractor.cnt=3"],
                 capsys)
    assert "'cnt'" in err and "count" in err, err


def test_robustness_shows_the_budget_and_draws_the_plot(state_run, tmp_path, capsys):
    plot = tmp_path / "rob.png"
    assert app(["robustness", "--run", str(state_run), "--shifts", "distractor", "--episodes", "2", "--envs", "2",
                "--plot", str(plot), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "state / bc" in out and "trained 4 steps, batch" in out and "cached" in out, out
    assert "drop: clean success minus shifted success" in out and plot.stat().st_size > 0


def test_a_demo_without_its_weights_stops_before_collecting(tmp_path, capsys):
    err = _error(["demo", "--set", "encoders=[imagenet_resnet18]", "--set", "encoder_options={}",
                  "--out", tmp_path / "demo"], capsys)
    assert "vfmbench weights download imagenet_resnet18" in err, err
    assert not (tmp_path / "demo").exists()


def test_config_keys_with_an_option_are_used_and_a_conflict_is_an_error(reach, tmp_path, capsys):
    """Defect: collect's --episodes/--seed/--action-noise and train's --seed defaults silently replaced the
    same keys given with --set or --config."""
    import json

    out = tmp_path / "data"
    assert app(["collect", "--task", "fetch_reach", "--out", str(out), "--no-progress", "--set", "episodes=1",
                "--set", "task_config.resolution=32", "--set", "task_config.max_episode_steps=10"]) == 0
    assert "1 episodes" in capsys.readouterr().out
    err = _error(["collect", "--task", "fetch_reach", "--out", tmp_path / "other", "--episodes", "3",
                  "--set", "episodes=2"], capsys)
    assert "episodes is given twice, 3 by its command-line option and 2" in err, err
    run = tmp_path / "run"
    assert app(["train", "--dataset", str(reach.root), "--encoder", "state", "--out", str(run), "--no-eval",
                "--no-progress", "--set", "seed=3", "--set", "train.steps=2", "--set", "train.device=cpu"]) == 0
    assert json.loads((run / "config.json").read_text())["spec"]["seed"] == 3
    err = _error(["train", "--dataset", reach.root, "--encoder", "state", "--out", tmp_path / "r2",
                  "--set", "encoder=e2e_cnn"], capsys)
    assert "encoder is given twice" in err and not (tmp_path / "r2").exists(), err


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "DATA", "--encoder", "state", "--random-weights", "--out", "OUT"],
    ["embed", "--encoder", "e2e_cnn", "--dataset", "DATA", "--random-weights"],
    ["rl", "train", "--task", "dmc_cartpole_swingup", "--random-weights", "--out", "OUT"],
])
def test_random_weights_for_an_encoder_without_weights_is_refused(argv, tmp_path, capsys):
    """--random-weights where there are no pretrained weights to replace is an error, not ignored."""
    from toy_tasks import collect_point_reach

    data = collect_point_reach(tmp_path / "data", 2)
    argv = [str(data.root) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert app(argv) == 2
    assert "has no pretrained weights to replace" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_damaged_json_of_a_run_is_one_line_naming_the_file(tmp_path, capsys):
    """Every JSON file the project reads back goes through `read_json`: a damaged one is named,
    never a traceback (here the config of an RL run folder that would be resumed)."""
    from vfmbench.utils.errors import DamagedFileError
    from vfmbench.utils.io import read_json

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"task": ')
    with pytest.raises(DamagedFileError, match=r"config.json is not valid JSON"):
        read_json(run / "config.json")
    assert app(["rl", "train", "--task", "dmc_cartpole_swingup", "--encoder", "state", "--frames", "10",
                "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "config.json is not valid JSON" in err and "use another --out folder" in err and "Traceback" not in err
    assert (run / "config.json").read_text() == '{"task": '  # left as it was


def test_an_rl_run_given_to_an_offline_command_points_to_rl_evaluate(tmp_path, capsys):
    run = tmp_path / "rl_run"
    run.mkdir()
    (run / "config.json").write_text('{"schema": "vfmbench.rl_run/1", "spec": {"agent": "drqv2"}, "task": {}, '
                                     '"task_config": {}}')
    for argv in (["evaluate", "--run", str(run)], ["robustness", "--run", str(run), "--shifts", "distractor"]):
        assert app(argv) == 2
        assert f"vfmbench rl evaluate --run {run}" in capsys.readouterr().err
