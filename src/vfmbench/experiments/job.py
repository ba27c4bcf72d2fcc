"""The one job unit: `run_job(JobSpec) -> RunRecord`.

A job trains one (task, encoder, method, seed) on a dataset into a run folder (resuming, or
reading back a finished run) and evaluates it: on held-out seeds of the clean task, under an
optional shift, and under a list of robustness shifts on the same seeds (paired drops).
It opens its own dataset and builds its own environments (the evaluation environments of the
previous job in the same process are reused when task and config match: making a task instance,
its renderer above all, costs about 0.6 s on a CPU), and its spec and record are plain typed,
picklable dataclasses, so a job runs the same in this process, in a worker process or on
another machine. `vfmbench train`, `vfmbench evaluate`, `vfmbench robustness` and the demo all
run jobs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vfmbench.evaluation.robustness import ShiftResult, evaluate_shifts
from vfmbench.evaluation.rollout import EVAL_SEED_BASE, EvalResult, evaluate
from vfmbench.tasks import Task, TaskConfig, make_task
from vfmbench.training import RunSpec, Trainer, TrainRecord, load_agent, read_run_config, read_train_record
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError, VfmbenchError

RUN_SCHEMA = "vfmbench.run/1"
log = logging.getLogger(__name__)
_EVAL_ENVS: dict[str, list[Task]] = {}  # this process's evaluation environments, of one task and config


@dataclass
class EvalSpec:
    """How a job evaluates its policy (``episodes = 0``: not at all)."""

    episodes: int = 20  # held-out episodes, seeds seed, seed+1, ...
    envs: int = 10  # task instances stepped in lockstep
    seed: int = EVAL_SEED_BASE
    step: int | None = None  # checkpoint to evaluate (None: the final one)
    shift: str = "none"  # the shift of every evaluation of the job (also during training); "none": the clean task
    shift_options: dict[str, Any] = field(default_factory=dict)
    robustness: list[str] = field(default_factory=list)  # also evaluate under these shifts, paired with none
    robustness_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # shift -> its options
    video: str | None = None  # GIF of the first episodes of the main evaluation
    act_options: dict[str, Any] = field(default_factory=dict)  # the policy's acting options (load_agent), e.g. action_horizon

    def __post_init__(self) -> None:
        if self.episodes < 0:
            raise ConfigError(f"eval.episodes must be 0 or more, got {self.episodes}")
        if self.envs < 1:
            raise ConfigError(f"eval.envs must be at least 1, got {self.envs}")
        if self.robustness and self.episodes == 0:
            raise ConfigError("eval.robustness needs eval.episodes > 0")


@dataclass
class JobSpec:
    """One job: train `run` on the dataset at `dataset` into `out`, then evaluate by `eval`.

    `dataset` may be None for a run folder that has finished training (evaluation only); the
    run then is the one recorded in `out`. `cache_dir`: the embedding cache (None: the default
    under VFMBENCH_HOME).
    """

    run: RunSpec
    out: str
    dataset: str | None = None
    eval: EvalSpec = field(default_factory=EvalSpec)
    cache_dir: str | None = None
    progress: bool = False


@dataclass
class RunRecord:
    """Everything a job reports (schema `RUN_SCHEMA`, documented in docs/results.md)."""

    schema: str
    task: str
    encoder: str
    encoder_label: str
    pretrained: bool
    method: str
    goal_conditioned: bool
    seed: int
    train: TrainRecord
    evaluation: EvalResult | None  # the main evaluation (None with eval.episodes = 0)
    robustness: list[ShiftResult]
    run_dir: str
    host: str
    seconds: float

    @property
    def success_rate(self) -> float | None:
        return self.evaluation.success_rate if self.evaluation is not None else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_job(spec: JobSpec) -> RunRecord:
    """Train (or resume, or read back) and evaluate the job `spec`; see the module docstring.

    Raises `ConfigError` / `DatasetError` / `VfmbenchError` with what to do for bad settings,
    missing or damaged datasets, and run folders that hold another run.
    """
    t0 = time.time()
    out = Path(spec.out)
    ev = spec.eval
    run = spec.run
    if spec.dataset is not None:
        train = _train(spec)
        trainer_eval = train[1]
        train_record = train[0]
        config = read_run_config(out)
    else:
        config = read_run_config(out)
        recorded = from_dict(RunSpec, config["spec"], source=str(out / "config.json"))
        if recorded != run:
            raise VfmbenchError(f"{out} holds another run than the job names; pass its dataset to train it")
        train_record, trainer_eval = read_train_record(out, unfinished=True, step=ev.step), None
        _check_recorded_dataset_held_out(config, spec)
    task_config = from_dict(TaskConfig, config["task_config"], source=f"{out / 'config.json'} task_config")
    if task_config.shift != "none" and ev.episodes:
        log.warning("%s: the training data was rendered under shift %r; evaluation runs under %r (eval.shift)",
                    out, task_config.shift, ev.shift)

    evaluation: EvalResult | None = None
    robustness: list[ShiftResult] = []
    if ev.episodes:
        # evaluate where training ran; a run evaluated later may be on another machine: its GPU if any
        device = run.train.device if spec.dataset is not None else "auto"
        agent = None
        if _is_final_clean_evaluation(trainer_eval, spec):
            evaluation = trainer_eval
        else:
            agent, _ = load_agent(out, ev.step, device=device, act_options=ev.act_options)
            evaluation = evaluate(agent, run.task, task_config, episodes=ev.episodes, seed=ev.seed, n_envs=ev.envs,
                                  video=ev.video, progress=spec.progress, shift=ev.shift, shift_options=ev.shift_options)
        if ev.robustness:
            if agent is None:  # loaded once for both evaluations
                agent, _ = load_agent(out, ev.step, device=device, act_options=ev.act_options)
            clean = evaluation if evaluation.shift == "none" else None
            report = evaluate_shifts(agent, run.task, task_config, ev.robustness, ev.robustness_options,
                                     episodes=ev.episodes, seed=ev.seed, n_envs=ev.envs, progress=spec.progress,
                                     clean=clean)
            robustness = report.results
    return RunRecord(
        schema=RUN_SCHEMA,
        task=run.task,
        encoder=run.encoder,
        encoder_label=train_record.encoder_label,
        pretrained=train_record.pretrained,
        method=run.method,
        goal_conditioned=train_record.goal_conditioned,
        seed=run.seed,
        train=train_record,
        evaluation=evaluation,
        robustness=robustness,
        run_dir=str(out),
        host=platform.node(),
        seconds=round(time.time() - t0, 2),
    )


def _train(spec: JobSpec) -> tuple[TrainRecord, EvalResult | None]:
    """Train the job's run. Unless the job evaluates nothing (``eval.episodes = 0``), the policy is
    evaluated every ``train.eval_every`` steps and after the last one, on ``train.eval_episodes``
    held-out episodes (these evaluations pick the best checkpoints)."""
    from vfmbench.cache import EmbeddingCache
    from vfmbench.data.collection import open_dataset

    assert spec.dataset is not None
    dataset = open_dataset(spec.dataset)
    run, ev = spec.run, spec.eval
    if run.task != dataset.task.get("task"):
        raise ConfigError(f"the job's task {run.task!r} is not the dataset's ({dataset.task.get('task')!r}, "
                          f"{dataset.root})")
    task_config = from_dict(TaskConfig, dataset.header.get("task_config", {}), f"{dataset.root}/manifest.json task_config")
    _check_held_out(dataset, spec)
    trainer = Trainer(run, dataset, spec.out, cache=EmbeddingCache(spec.cache_dir), progress=spec.progress)
    t = run.train
    if not ev.episodes or not t.eval_episodes:
        return trainer.run(None), None
    task_config = dataclasses.replace(task_config, shift=ev.shift, shift_options=dict(ev.shift_options))
    envs = _eval_envs(run.task, task_config, max(1, min(t.eval_envs, t.eval_episodes)))

    def evaluate_fn(agent, step: int) -> EvalResult:
        return evaluate(agent, run.task, task_config, episodes=t.eval_episodes, seed=ev.seed, n_envs=t.eval_envs,
                        progress=False, envs=envs)

    return trainer.run(evaluate_fn), trainer.final_evaluation


def _eval_envs(task: str, config: TaskConfig, n: int) -> list[Task]:
    """`n` instances of `task` under `config` for a job's evaluations, kept for the next job of this
    process: the same task and config reuse them (every episode starts from ``reset(seed)``, so a
    reused instance gives the same episodes as a new one); any other closes them."""
    key = json.dumps([task, asdict(config)], sort_keys=True, default=str)
    envs = _EVAL_ENVS.pop(key, [])
    for other in _EVAL_ENVS.values():
        for env in other:
            env.close()
    _EVAL_ENVS.clear()
    envs += [make_task(task, config) for _ in range(n - len(envs))]
    _EVAL_ENVS[key] = envs
    return envs[:n]


def _check_held_out(dataset, spec: JobSpec) -> None:
    """Evaluation episodes must not be training episodes: refuse seeds the dataset was collected on."""
    ev, t = spec.eval, spec.run.train
    if not ev.episodes:
        return
    n = max(ev.episodes, t.eval_episodes)
    overlap = sorted({int(e["seed"]) for e in dataset.manifest["episodes"] if "seed" in e} &
                     set(range(ev.seed, ev.seed + n)))
    if overlap:
        raise ConfigError(
            f"evaluation seeds {ev.seed}..{ev.seed + n - 1} include {len(overlap)} seeds of the training episodes "
            f"in {dataset.root} (e.g. {overlap[0]}); evaluation must be held out: collect with seeds below "
            f"{ev.seed} or evaluate from another eval.seed")


def _check_recorded_dataset_held_out(config: dict[str, Any], spec: JobSpec) -> None:
    """For an evaluation-only job: the run's dataset, where it still is, must not share seeds with
    the evaluation episodes."""
    from vfmbench.data.collection import open_dataset

    path = Path(config.get("dataset", ""))
    if spec.eval.episodes and (path / "manifest.json").exists():
        _check_held_out(open_dataset(path), spec)


def _is_final_clean_evaluation(result: EvalResult | None, spec: JobSpec) -> bool:
    """Whether the trainer's last evaluation is the one the job asks for (no need to repeat it)."""
    ev = spec.eval
    return (result is not None and ev.step is None and ev.video is None and not ev.act_options and result.shift == ev.shift
            and result.shift_options == ev.shift_options and result.episodes == ev.episodes
            and result.seeds[:1] == [ev.seed])


def job_for_run(run_dir: str | Path, eval_spec: EvalSpec | None = None, progress: bool = False) -> JobSpec:
    """An evaluation-only job for an existing run folder (as `vfmbench evaluate` makes)."""
    config = read_run_config(run_dir)
    run = from_dict(RunSpec, config["spec"], source=str(Path(run_dir) / "config.json"))
    return JobSpec(run=run, out=str(run_dir), dataset=None, eval=eval_spec or EvalSpec(), progress=progress)
