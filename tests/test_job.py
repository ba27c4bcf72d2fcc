"""The job unit: a typed spec in, a typed record out; runs the same in a worker process, builds
its own environments; observation wrappers are seen identically by collection, training and
evaluation; the job evaluates on the agent's device (GPU test)."""

import dataclasses
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from toy_tasks import collect_point_reach, register_point_reach

from vfmbench.data.collection import CollectConfig, collect
from vfmbench.experiments import EvalSpec, JobSpec, RunRecord, job_for_run, run_job
from vfmbench.tasks import make_task
from vfmbench.training import RunSpec, TrainConfig, read_run_config

VOLATILE = {"seconds", "train_seconds", "prepare_seconds", "run_dir", "host"}


def _stable(record: RunRecord) -> dict:
    """The record without timings and paths."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in VOLATILE}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(dataclasses.asdict(record))


@pytest.mark.sim
def test_job_runs_in_a_subprocess_from_a_pickled_spec_and_returns_the_same_record(reach_dataset, tmp_path):
    run = RunSpec(task="fetch_reach", encoder="state", train=TrainConfig(steps=60, log_every=20, eval_episodes=3,
                                                                         eval_envs=3))
    spec = JobSpec(run=run, out=str(tmp_path / "here"), dataset=str(reach_dataset.root),
                   eval=EvalSpec(episodes=3, envs=3, robustness=["distractor"]))
    here = run_job(spec)
    remote = dataclasses.replace(spec, out=str(tmp_path / "there"))
    pickle.dumps(remote)  # what an executor ships
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(run_job, remote).result(timeout=600)
    assert isinstance(there, RunRecord) and there.run_dir == str(tmp_path / "there")
    assert _stable(there) == _stable(here)
    assert [s.shift for s in here.robustness] == ["none", "distractor"]
    assert here.evaluation is not None and here.robustness[0].success_rate == here.evaluation.success_rate
    # an evaluation-only job of the finished run reads it back and evaluates on the same seeds
    again = run_job(job_for_run(tmp_path / "here", EvalSpec(episodes=3, envs=3)))
    assert again.train == here.train and again.evaluation.successes == here.evaluation.successes


@pytest.mark.sim
def test_a_wrapper_is_seen_identically_by_collection_training_and_evaluation(tmp_path, monkeypatch):
    cfg = {"resolution": 32, "max_episode_steps": 8, "wrappers": [{"name": "gt_mask", "options": {"fill": 0}}]}
    ds = collect(CollectConfig(task="fetch_push", episodes=2, keep_failures=True, task_config=cfg), tmp_path / "data",
                 progress=False)
    pixels = ds.load("pixels")
    # collection: frames are masked (the background is the fill value)
    assert (pixels == 0).all(-1).mean() > 0.8
    assert ds.task["wrappers"] == [{"name": "gt_mask", "options": {"fill": 0}}]
    # the same seed through the one task builder gives the dataset's first frame
    first = ds.manifest["episodes"][0]["seed"]
    with make_task("fetch_push", ds.header["task_config"]) as task:
        np.testing.assert_array_equal(task.reset(first)["pixels"], pixels[0])
    # training and evaluation through a job: the run records the wrapper, rollouts see masked frames
    seen = []
    from vfmbench.agents import Agent

    act = Agent.act
    monkeypatch.setattr(Agent, "act", lambda self, obs: seen.append(obs["pixels"].copy()) or act(self, obs))
    run = RunSpec(task="fetch_push", encoder="e2e_cnn", train=TrainConfig(steps=2, eval_episodes=2, eval_envs=2),
                  method_config={"batch_size": 8})
    record = run_job(JobSpec(run=run, out=str(tmp_path / "run"), dataset=str(ds.root),
                             eval=EvalSpec(episodes=2, envs=2)))
    assert read_run_config(tmp_path / "run")["task_config"]["wrappers"] == cfg["wrappers"]
    assert record.evaluation is not None and seen
    frames = np.concatenate(seen)
    assert (frames == 0).all(-1).mean() > 0.8
    with make_task("fetch_push", ds.header["task_config"]) as task:
        np.testing.assert_array_equal(seen[0][0], task.reset(record.evaluation.seeds[0])["pixels"])


def test_job_refuses_a_dataset_of_another_task(tmp_path):
    from vfmbench.utils.errors import ConfigError

    ds = collect_point_reach(tmp_path / "data", 2)
    with pytest.raises(ConfigError, match="not the dataset's"):
        run_job(JobSpec(run=RunSpec(task="fetch_push", encoder="state"), out=str(tmp_path / "r"), dataset=str(ds.root)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_with_periodic_evaluation(tmp_path):
    """`train` with train.eval_every > 0 on a GPU: evaluations run on the agent's device and
    training continues on it afterwards (it used to move the agent to the CPU and crash)."""
    register_point_reach()
    ds = collect_point_reach(tmp_path / "data", 20)
    run = RunSpec(task="point_reach", encoder="state", method="bc", method_config={"hidden": [64], "head": [64]},
                  train=TrainConfig(steps=300, eval_every=100, eval_episodes=10, eval_envs=5, device="cuda",
                                    log_every=50))
    record = run_job(JobSpec(run=run, out=str(tmp_path / "run"), dataset=str(ds.root),
                             eval=EvalSpec(episodes=10, envs=5)))
    assert [e.step for e in record.train.evals] == [100, 200, 300]
    assert record.train.device.startswith("cuda") and record.evaluation is not None


@pytest.mark.sim
def test_data_rendered_under_a_shift_is_evaluated_under_the_jobs_shift_with_a_notice(tmp_path, caplog):
    cfg = {"resolution": 32, "max_episode_steps": 5, "shift": "distractor"}
    ds = collect(CollectConfig(task="fetch_reach", episodes=2, keep_failures=True, task_config=cfg), tmp_path / "d",
                 progress=False)
    run = RunSpec(task="fetch_reach", encoder="state", train=TrainConfig(steps=2, eval_episodes=2, eval_envs=2))
    with caplog.at_level("WARNING", logger="vfmbench.experiments.job"):
        record = run_job(JobSpec(run=run, out=str(tmp_path / "r"), dataset=str(ds.root),
                                 eval=EvalSpec(episodes=2, envs=2)))
    assert record.evaluation.shift == "none" and record.train.evals[-1].success_rate == record.evaluation.success_rate
    assert "rendered under shift 'distractor'" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_diffusion_policy_on_cuda_is_repeatable_with_per_episode_generators(tmp_path):
    """Sampling noise for an agent on the GPU comes from CPU generators seeded by the episodes."""
    from toy_tasks import PointReach

    from vfmbench.agents import make_agent
    from vfmbench.evaluation import evaluate

    register_point_reach()
    torch.manual_seed(0)
    spaces = PointReach().spaces
    agent = make_agent("state", "dp_conv", spaces, method_config_data={
        "down_dims": [16, 32], "step_embed_dim": 16, "pred_horizon": 8, "action_horizon": 4,
        "inference_steps": 4}).to("cuda")
    envs = [PointReach() for _ in range(3)]
    first = evaluate(agent, "point_reach", episodes=6, n_envs=3, envs=envs, progress=False)
    torch.randn(10, device="cuda")
    again = evaluate(agent, "point_reach", episodes=6, n_envs=2, envs=envs[:2], progress=False)
    assert again.returns == first.returns and agent.device.type == "cuda"
