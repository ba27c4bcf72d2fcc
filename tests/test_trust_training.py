"""Training, checkpoints, evaluation and the CLI refuse what would give a wrong number without a
word: each test is one case a tester found, asserting the right behaviour."""

import errno
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from toy_tasks import register_point_reach, scored

from vfmbench.agents import Normalizer
from vfmbench.cli import app
from vfmbench.data.episodes import EpisodeWriter
from vfmbench.experiments import EvalSpec, JobSpec, run_job
from vfmbench.training import RunSpec, TrainConfig, Trainer, load_agent
from vfmbench.training.checkpoint import list_checkpoints
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ActionError, ConfigError, TrainingDivergedError, VfmbenchError


@pytest.fixture
def pixels(tmp_path):
    rng = np.random.default_rng(0)
    w = EpisodeWriter(tmp_path / "px", {"task": {"task": "synthetic", "state_dim": 2, "proprio_dim": 0,
                                                 "action_dim": 2, "goal_conditioned": False, "resolution": 32}})
    for ep in range(3):
        w.append({"pixels": rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
                  "actions": rng.uniform(-1, 1, (8, 2)).astype(np.float32),
                  "proprio": np.zeros((8, 0), np.float32)}, {}, {"seed": ep})
    return w.finalize()


# -- checkpoints load strictly ------------------------------------------------------------------------


def test_a_checkpoint_missing_the_normaliser_is_refused(synthetic, tmp_path):
    Trainer(RunSpec(task="synthetic", encoder="state", train=TrainConfig(steps=5)), synthetic, tmp_path / "r",
            progress=False).run()
    model = list_checkpoints(tmp_path / "r")[-1] / "model.safetensors"
    state = load_file(str(model))
    save_file({k: v for k, v in state.items() if not k.startswith("feature_norm.")}, str(model))
    with pytest.raises(VfmbenchError, match="missing feature_norm.mean"):
        load_agent(tmp_path / "r")
    save_file({"unrelated.weight": torch.zeros(2)}, str(model))
    with pytest.raises(VfmbenchError, match="does not fit the run's model"):
        load_agent(tmp_path / "r")


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_checkpoint_file_is_a_clear_error(synthetic, tmp_path, damage):
    Trainer(RunSpec(task="synthetic", encoder="state", train=TrainConfig(steps=5)), synthetic, tmp_path / "r",
            progress=False).run()
    model = list_checkpoints(tmp_path / "r")[-1] / "model.safetensors"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(VfmbenchError, match="model.safetensors is damaged"):
        load_agent(tmp_path / "r")


# -- diverged training stops ----------------------------------------------------------------------------


def test_diverged_training_stops_with_a_clear_error_and_valid_metrics(synthetic, tmp_path):
    spec = RunSpec(task="synthetic", encoder="state", method_config={"lr": 1e4},
                   train=TrainConfig(steps=400, log_every=7, checkpoint_every=5))
    with pytest.raises(TrainingDivergedError, match="training diverged at or before step"):
        Trainer(spec, synthetic, tmp_path / "r", progress=False).run()
    saved = list((tmp_path / "r" / "checkpoints").rglob("*.safetensors"))
    for f in saved:  # metrics are read back lazily: no checkpoint may hold the diverged weights
        assert all(torch.isfinite(t).all() for t in load_file(f).values()), f
    for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in metrics.jsonl"))
    assert not (tmp_path / "r" / "result.json").exists()


@pytest.mark.sim
def test_tasks_refuse_non_finite_actions():
    from vfmbench.tasks import make_task

    with make_task("fetch_reach", resolution=32) as task:
        task.reset(0)
        with pytest.raises(ActionError, match="non-finite action"):
            task.step(np.array([np.nan, 0, 0, 0]))
        with pytest.raises(ActionError, match="takes actions of 4 numbers"):
            task.step(np.zeros(3))


# -- the final checkpoint is written before the final evaluation ---------------------------------------


def test_the_final_checkpoint_exists_before_the_final_evaluation(synthetic, tmp_path):
    def crash(agent, step):
        raise RuntimeError("evaluation failed")

    with pytest.raises(RuntimeError):
        Trainer(RunSpec(task="synthetic", encoder="state", train=TrainConfig(steps=7, checkpoint_every=5)),
                synthetic, tmp_path / "r", progress=False).run(crash)
    assert list_checkpoints(tmp_path / "r")[-1].name == "step_0000007"


# -- resume is the same run -------------------------------------------------------------------------------


def test_resumed_training_equals_uninterrupted_bit_for_bit(pixels, tmp_path):
    """Joint training (augmentation draws torch random numbers; batches come from the sampler)."""
    spec = RunSpec(task="synthetic", encoder="e2e_cnn", method_config={"batch_size": 8},
                   train=TrainConfig(steps=12, checkpoint_every=4, log_every=3, eval_every=6))
    whole = Trainer(spec, pixels, tmp_path / "whole", progress=False).run(lambda a, s: scored(0.5))

    def crash_at_12(agent, step):
        if step == 12:
            raise KeyboardInterrupt
        return scored(0.5)

    with pytest.raises(KeyboardInterrupt):
        Trainer(spec, pixels, tmp_path / "cut", progress=False).run(crash_at_12)
    first = json.loads((list_checkpoints(tmp_path / "cut")[-1] / "state.json").read_text())["train_seconds"]
    resumed = Trainer(spec, pixels, tmp_path / "cut", progress=False).run(lambda a, s: scored(0.5))
    a = load_file(str(list_checkpoints(tmp_path / "whole")[-1] / "model.safetensors"))
    b = load_file(str(list_checkpoints(tmp_path / "cut")[-1] / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 9, 12]  # nothing logged twice
    assert resumed.train_seconds >= first and resumed.evals == whole.evals


# -- normalisation cannot blow up ----------------------------------------------------------------------------


def test_near_constant_features_are_not_divided_by_their_tiny_std():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    x[:, 3] = 0.2 + 1e-6 * rng.normal(size=500)  # a feature that barely varies on the training data
    norm = Normalizer(4).fit(x)
    shifted = torch.tensor([[0.0, 0.0, 0.0, 0.7]])  # it moves by 0.5 under a visual shift
    out = norm(shifted)
    assert abs(float(out[0, 3])) < 10  # 0.5 / (0.1 x typical std ~1) = 5; without a floor 5e5
    assert float(norm.std[0]) == pytest.approx(float(x[:, 0].std()), rel=1e-5)  # ordinary dimensions untouched


# -- evaluation is held out -------------------------------------------------------------------------------------


def test_evaluation_seeds_that_are_training_seeds_are_refused(tmp_path):
    register_point_reach()
    from toy_tasks import PointReach

    env = PointReach()
    w = EpisodeWriter(tmp_path / "data", {"task": env.describe(), "task_config": {}})
    for seed in range(999_995, 1_000_005):
        env.reset(seed)
        w.append({"state": np.zeros((2, 4), np.float32), "actions": np.zeros((2, 2), np.float32),
                  "proprio": np.zeros((2, 0), np.float32)}, {}, {"seed": seed})
    w.finalize()
    run = RunSpec(task="point_reach", encoder="state", train=TrainConfig(steps=2, eval_episodes=5))
    with pytest.raises(ConfigError, match="include 5 seeds of the training episodes"):
        run_job(JobSpec(run=run, out=str(tmp_path / "r"), dataset=str(tmp_path / "data"),
                        eval=EvalSpec(episodes=5, envs=1)))
    assert not (tmp_path / "r").exists()


# -- bad settings are refused before anything is written -----------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ({"method_config": {"batch_size": -3}}, "batch_size must be at least 1"),
    ({"method_config": {"batch_size": 0}}, "batch_size must be at least 1"),
    ({"method_config": {"lr": -1}}, "lr must be a positive finite number"),
    ({"method_config": {"lr": float("nan")}}, "lr must be a positive finite number"),
    ({"train": {"log_every": 0}}, "log_every must be at least 1"),
    ({"train": {"device": "gpu"}}, "'gpu' is not a device"),
])
def test_meaningless_settings_are_config_errors(synthetic, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        spec = from_dict(RunSpec, {"task": "synthetic", "encoder": "state", **override})
        Trainer(spec, synthetic, tmp_path / "r", progress=False).run()
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_cuda_on_a_machine_without_it_is_a_config_error(synthetic, tmp_path):
    spec = from_dict(RunSpec, {"task": "synthetic", "encoder": "state", "train": {"device": "cuda"}})
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Trainer(spec, synthetic, tmp_path / "r", progress=False).run()


def test_frames_too_small_or_crops_too_large_fail_before_training(pixels, tmp_path):
    from vfmbench.agents import make_agent
    from vfmbench.tasks import TaskSpaces

    with pytest.raises(ConfigError, match="cannot encode 20x20 frames"):
        make_agent("e2e_cnn", "bc", TaskSpaces(2, 2, 0, (20, 20, 3)))
    spec = RunSpec(task="synthetic", encoder="e2e_cnn", train=TrainConfig(steps=2, augment="crop", crop_size=40))
    with pytest.raises(ConfigError, match="crop_size 40 is larger than the task's 32x32 frames"):
        Trainer(spec, pixels, tmp_path / "r", progress=False).run()
    assert not (tmp_path / "r").exists()


def test_a_refused_train_leaves_the_folder_usable_and_names_what_differs(synthetic, tmp_path):
    base = {"task": "synthetic", "encoder": "state", "train": {"steps": 3}}
    with pytest.raises(ConfigError):
        Trainer(from_dict(RunSpec, {**base, "method_config": {"lr": -1}}), synthetic, tmp_path / "r",
                progress=False).run()
    Trainer(from_dict(RunSpec, base), synthetic, tmp_path / "r", progress=False).run()  # the corrected command
    with pytest.raises(VfmbenchError, match=r"spec.seed: existing 0 vs requested 4"):
        Trainer(from_dict(RunSpec, {**base, "seed": 4}), synthetic, tmp_path / "r", progress=False).run()


def test_evaluating_no_episodes_is_an_error():
    from vfmbench.evaluation import evaluate

    with pytest.raises(ConfigError, match="at least 1 episode"):
        evaluate(None, "fetch_reach", episodes=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="eval.episodes must be 0 or more"):
        EvalSpec(episodes=-2)


def test_demo_with_no_episodes_is_an_error(capsys):
    assert app(["demo", "--set", "episodes=0", "--out", "/nonexistent/never-written"]) == 2
    assert "episodes and eval_episodes must be at least 1" in capsys.readouterr().err


# -- the CLI's error boundary ------------------------------------------------------------------------------------------


def test_disk_full_is_a_message_not_a_traceback(monkeypatch, capsys):
    import vfmbench.cli.tasks as tasks_cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "somewhere/manifest.json")

    monkeypatch.setattr(tasks_cli, "_task_row", full)
    assert app(["tasks", "list"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device (somewhere/manifest.json)" in err and "Traceback" not in err


def test_robustness_into_an_unwritable_place_fails_before_any_rollout(tmp_path, monkeypatch, capsys):
    import os

    import vfmbench.experiments.job as job

    monkeypatch.setattr(job, "run_job", lambda spec: pytest.fail("rollouts ran before the output was checked"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert app(["robustness", "--run", str(tmp_path), "--out", str(blocker / "r.json")]) == 2
    assert "cannot create the folder" in capsys.readouterr().err
    # a read-only folder (root writes anywhere, so the permission answer is simulated)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert app(["robustness", "--run", str(tmp_path), "--out", str(tmp_path / "r.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_half_written_checkpoints_of_ended_processes_are_removed(synthetic, tmp_path):
    spec = RunSpec(task="synthetic", encoder="state", train=TrainConfig(steps=4, checkpoint_every=2))
    stale = tmp_path / "r" / "checkpoints" / ".tmp_step_0000002_999999999_1"  # no such process
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    Trainer(spec, synthetic, tmp_path / "r", progress=False).run()
    assert not stale.exists()
    assert [c.name for c in list_checkpoints(tmp_path / "r")] == ["step_0000004"]


@pytest.mark.parametrize("content", ["{not json", "[]", '{"spec": {}}'])
def test_a_garbled_run_config_is_a_clear_error(tmp_path, content):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(VfmbenchError, match="config.json"):
        load_agent(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_embed_on_cuda_without_it_is_a_clear_error(pixels, capsys):
    assert app(["embed", "--encoder", "random_resnet18", "--dataset", str(pixels.root), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_unknown_or_mistyped_encoder_options_are_config_errors():
    from vfmbench.encoders import create_encoder

    with pytest.raises(ConfigError, match="bad encoder_options"):
        create_encoder("e2e_cnn", bogus=1)


def test_settings_built_in_python_are_validated_too():
    with pytest.raises(ConfigError, match="train.steps must be at least 1"):
        TrainConfig(steps=-1)


def test_checkpoints_without_a_config_are_refused(synthetic, tmp_path):
    spec = RunSpec(task="synthetic", encoder="state", train=TrainConfig(steps=4, checkpoint_every=2))
    Trainer(spec, synthetic, tmp_path / "r", progress=False).run()
    (tmp_path / "r" / "config.json").unlink()
    (tmp_path / "r" / "result.json").unlink()
    with pytest.raises(VfmbenchError, match="checkpoints but no config.json"):
        Trainer(spec, synthetic, tmp_path / "r", progress=False).run()


def test_outputs_through_a_regular_file_are_one_line_errors(tmp_path, capsys):
    from toy_tasks import collect_point_reach

    register_point_reach()
    ds = collect_point_reach(tmp_path / "data", 2)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert app(["train", "--dataset", str(ds.root), "--encoder", "state", "--out", str(blocker / "run"),
                "--no-eval", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Not a directory" in err and "Traceback" not in err


def test_evaluating_a_finished_run_on_its_training_seeds_is_refused(tmp_path):
    register_point_reach()
    from toy_tasks import PointReach

    env = PointReach()
    w = EpisodeWriter(tmp_path / "data", {"task": env.describe(), "task_config": {}})
    for seed in (999_998, 999_999):
        w.append({"state": np.zeros((2, 4), np.float32), "actions": np.zeros((2, 2), np.float32),
                  "proprio": np.zeros((2, 0), np.float32)}, {}, {"seed": seed})
    w.finalize()
    run = RunSpec(task="point_reach", encoder="state", train=TrainConfig(steps=2, eval_episodes=1))
    run_job(JobSpec(run=run, out=str(tmp_path / "r"), dataset=str(tmp_path / "data"), eval=EvalSpec(episodes=0)))
    from vfmbench.experiments import job_for_run

    with pytest.raises(ConfigError, match="seeds of the training episodes"):
        run_job(job_for_run(tmp_path / "r", EvalSpec(episodes=3, envs=1, seed=999_999)))


def test_a_stopped_run_is_evaluated_at_its_latest_checkpoint(tmp_path, monkeypatch, capsys, caplog):
    """Training killed after its step-20 checkpoint (no result.json): evaluate and robustness use
    that checkpoint and say so; a folder without checkpoints is still refused."""
    from toy_tasks import collect_point_reach

    from vfmbench.experiments import job_for_run

    register_point_reach()
    ds = collect_point_reach(tmp_path / "data", 4)
    batch, calls = Trainer._batch, []

    def killed_at_30(self, *args):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return batch(self, *args)

    monkeypatch.setattr(Trainer, "_batch", killed_at_30)
    run = RunSpec(task="point_reach", encoder="state", train=TrainConfig(steps=40, checkpoint_every=20))
    with pytest.raises(KeyboardInterrupt):
        run_job(JobSpec(run=run, out=str(tmp_path / "r"), dataset=str(ds.root), eval=EvalSpec(episodes=0)))
    assert not (tmp_path / "r" / "result.json").exists()
    capsys.readouterr()
    assert app(["evaluate", "--run", str(tmp_path / "r"), "--episodes", "2", "--envs", "1", "--json",
                "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "latest checkpoint is at step 20 of 40; evaluating step 20" in caplog.text
    assert json.loads(out.out)["episodes"] == 2
    record = run_job(job_for_run(tmp_path / "r", EvalSpec(episodes=2, envs=1)))
    assert (record.train.steps, record.train.encoder_label, record.train.evals) == (20, "state", [])
    for ckpt in list_checkpoints(tmp_path / "r"):
        for f in ckpt.iterdir():
            f.unlink()
        ckpt.rmdir()
    assert app(["evaluate", "--run", str(tmp_path / "r"), "--episodes", "2", "--no-progress"]) == 2
    assert "has not finished training (no result.json) and has no checkpoint yet" in capsys.readouterr().err
