"""`vfmbench demo`: collect expert data, train every encoder over several seeds, evaluate on
held-out seeds, write ``results.json``, ``report.md`` and a plot.

Everything lands in the output folder (``data/``, ``runs/<run>/``); rerunning the same
command resumes: finished runs are read back, interrupted ones continue from their last
checkpoint.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vfmbench.cache import EmbeddingCache
from vfmbench.data.collection import CollectConfig, collect
from vfmbench.encoders import get_encoder_spec, list_encoders
from vfmbench.evaluation import EVAL_SEED_BASE, evaluate
from vfmbench.reports import summarize, summarize_robustness, write_report
from vfmbench.tasks import TaskConfig, make_task
from vfmbench.training import RunSpec, TrainConfig, Trainer
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError
from vfmbench.utils.io import write_json_atomic

RESULTS_SCHEMA = "vfmbench.results/1"


@dataclass
class DemoConfig:
    """The demo's grid. Defaults are the embedded default run (about 10 minutes on 2 CPU cores)."""

    task: str = "fetch_reach"
    encoders: list[str] = field(default_factory=lambda: ["state", "e2e_cnn", "random_resnet18"])
    include_installed: bool = True  # add every foundation encoder whose weights are installed
    method: str = "bc"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    episodes: int = 100  # expert episodes for training
    action_noise: float = 0.3  # DART noise while collecting (recorded actions are the expert's)
    eval_episodes: int = 20  # held-out evaluation episodes per run
    task_config: TaskConfig = field(default_factory=TaskConfig)
    method_config: dict[str, Any] = field(default_factory=dict)
    trainable_method_config: dict[str, Any] = field(default_factory=lambda: {"batch_size": 64})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000))
    trainable_steps: int | None = 3000  # steps for encoders trained jointly (None: train.steps)
    cache_dir: str | None = None  # embedding cache (default: $VFMBENCH_HOME/cache/embeddings)
    # evaluate every trained policy also under these shifts (vfmbench shifts list) and report
    # the drop in success against the clean task, on the same seeds
    shifts: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not self.encoders:
            raise ConfigError("encoders: give at least one encoder")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        for name in self.encoders:
            get_encoder_spec(name)  # unknown names list the valid ones
        from vfmbench.policies import method_config

        method_config(self.method, self.method_config, source="demo config method_config")
        from vfmbench.tasks.shifts import get_shift_spec

        for name in self.shifts:
            get_shift_spec(name)


def quick_config(config: DemoConfig) -> DemoConfig:
    """A smaller version of `config` that finishes in about 3 minutes on 2 CPU cores."""
    q = copy.deepcopy(config)
    q.seeds = q.seeds[:1]
    q.episodes = min(q.episodes, 40)
    q.eval_episodes = min(q.eval_episodes, 10)
    q.train.steps = min(q.train.steps, 1000)
    q.trainable_steps = min(q.trainable_steps or q.train.steps, 1200)
    return q


def demo_config_from(data: dict[str, Any] | None, source: str = "demo config") -> DemoConfig:
    return from_dict(DemoConfig, data or {}, source=source)


def _encoders(config: DemoConfig) -> list[str]:
    names = list(config.encoders)
    if config.include_installed:
        for name in list_encoders():
            spec = get_encoder_spec(name)
            if spec.weights is not None and spec.weights_status() == "installed" and name not in names:
                names.append(name)
    return names


def run_demo(config: DemoConfig, out: str | Path, progress: bool = True, log=print) -> dict[str, Any]:
    """Run the grid into `out`; returns the results document also written to ``out/results.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    write_json_atomic(out / "demo_config.json", asdict(config))
    encoders = _encoders(config)
    log(f"[demo] task {config.task}, method {config.method}, encoders {', '.join(encoders)}, seeds {config.seeds}")
    dataset = collect(
        CollectConfig(task=config.task, episodes=config.episodes, seed=0, action_noise=config.action_noise,
                      task_config=config.task_config),
        out / "data" / config.task,
        progress=progress,
    )
    log(f"[demo] dataset: {dataset.num_episodes} expert episodes, {dataset.n_frames} frames "
        f"(expert success {dataset.manifest.get('expert_success_rate', 1.0):.2f})")
    cache = EmbeddingCache(config.cache_dir)
    eval_envs = [make_task(config.task, config.task_config) for _ in range(min(10, config.eval_episodes))]
    records: list[dict[str, Any]] = []
    robustness: list[dict[str, Any]] = []
    try:
        for encoder in encoders:
            trainable = get_encoder_spec(encoder).trainable
            for seed in config.seeds:
                train = copy.deepcopy(config.train)
                mcfg = dict(config.method_config)
                if trainable:
                    train.steps = config.trainable_steps or train.steps
                    mcfg = {**mcfg, **config.trainable_method_config}
                train.eval_episodes = config.eval_episodes
                spec = RunSpec(task=config.task, encoder=encoder, method=config.method, seed=seed,
                               method_config=mcfg, train=train)
                run_dir = out / "runs" / f"{config.method}_{encoder}_s{seed}"

                def eval_fn(agent, step):
                    return evaluate(agent, config.task, config.task_config, episodes=config.eval_episodes,
                                    seed=EVAL_SEED_BASE, device=agent_device(agent), progress=False,
                                    envs=eval_envs).success_rate

                t = time.time()
                result = Trainer(spec, dataset, run_dir, cache=cache, progress=progress).run(eval_fn)
                record = {k: result[k] for k in ("task", "encoder", "encoder_label", "pretrained", "method",
                                                 "goal_conditioned", "seed", "steps", "success_rate",
                                                 "train_seconds")}
                record["eval_episodes"] = config.eval_episodes
                record["run_dir"] = str(run_dir.relative_to(out))
                records.append(record)
                log(f"[demo] {encoder:>18s} seed {seed}: success {record['success_rate']:.2f} "
                    f"({time.time() - t:.0f}s)")
                if config.shifts:
                    robustness += _robustness(config, run_dir, record, progress)
    finally:
        for env in eval_envs:
            env.close()
    summary = summarize(records)
    doc = {
        "schema": RESULTS_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - t0, 1),
        "config": asdict(config),
        "dataset": {"path": str((out / "data" / config.task).relative_to(out)), "episodes": dataset.num_episodes,
                    "frames": dataset.n_frames, "fingerprint": dataset.fingerprint()},
        "records": records,
        "summary": summary,
        "robustness": robustness,
        "robustness_summary": summarize_robustness(robustness),
    }
    write_json_atomic(out / "results.json", doc)
    write_report(doc, out)
    return doc


def _robustness(config: DemoConfig, run_dir: Path, record: dict[str, Any], progress: bool) -> list[dict[str, Any]]:
    """The run's final policy under the clean task and each shift (same seeds); one row per shift."""
    from vfmbench.evaluation.robustness import evaluate_shifts
    from vfmbench.training import load_agent
    from vfmbench.utils.io import read_json

    cached = run_dir / "robustness.json"
    if cached.exists() and read_json(cached).get("shifts") == config.shifts:
        return read_json(cached)["rows"]
    agent, _ = load_agent(run_dir)
    report = evaluate_shifts(agent, config.task, config.task_config, config.shifts,
                             episodes=config.eval_episodes, progress=progress)
    rows = [{"task": config.task, "encoder": record["encoder"], "encoder_label": record["encoder_label"],
             "method": record["method"], "seed": record["seed"], "shift": r.shift,
             "success_rate": r.success_rate, "drop": r.drop, "drop_se": r.drop_se, "episodes": r.episodes}
            for r in report.results]
    write_json_atomic(cached, {"shifts": config.shifts, "rows": rows})
    return rows


def agent_device(agent: torch.nn.Module) -> torch.device:
    try:
        return next(agent.parameters()).device
    except StopIteration:
        return torch.device("cpu")
