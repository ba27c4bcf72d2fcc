"""`vfmbench demo`: collect expert data, then one job (`vfmbench.experiments.job`) per encoder
and seed: train, evaluate on held-out seeds (and under shifts); write ``results.json``,
``report.md`` and a plot.

Everything lands in the output folder (``data/``, ``runs/<run>/``); rerunning the same
command resumes: finished runs are read back, interrupted ones continue from their last
checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vfmbench.data.collection import CollectConfig, collect
from vfmbench.encoders import get_encoder_spec, list_encoders
from vfmbench.experiments.job import EvalSpec, JobSpec, RunRecord, run_job
from vfmbench.reports.tables import RobustnessRow, SummaryRow, summarize, summarize_robustness, write_report
from vfmbench.tasks import TaskConfig
from vfmbench.training import RunSpec, TrainConfig
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError
from vfmbench.utils.io import write_json_atomic

RESULTS_SCHEMA = "vfmbench.results/2"


@dataclass
class DemoConfig:
    """The demo's grid. Defaults are the embedded default run (about 10 minutes on 2 CPU cores)."""

    task: str = "fetch_reach"
    encoders: list[str] = field(default_factory=lambda: ["state", "e2e_cnn", "random_resnet18",
                                                         "imagenet_efficientnet_lite0"])
    # encoder name -> its options; EfficientNet-Lite0 sees the 84x84 frames themselves (no resize to
    # 224: a seventh of the CPU cost), as random_resnet18 does
    encoder_options: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"imagenet_efficientnet_lite0": {"input_size": 84}})
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
    # masking axis (SAM-G): every encoder x seed also trained and evaluated on observations masked by each
    # of these (none, oracle, sam_vit_b, ...; docs/masking.md); mask_reference: the SAM-G reference
    masks: list[str] = field(default_factory=lambda: ["none"])
    mask_reference: str | None = None

    def validate(self) -> None:
        if not self.encoders:
            raise ConfigError("encoders: give at least one encoder")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        if self.episodes < 1 or self.eval_episodes < 1:
            raise ConfigError(f"episodes and eval_episodes must be at least 1, got {self.episodes} and "
                              f"{self.eval_episodes}")
        for name in self.encoders:
            spec = get_encoder_spec(name)  # unknown names list the valid ones
            if spec.weights is not None and spec.weights_status() != "installed":
                raise ConfigError(f"encoder {name!r} needs its pretrained weights ({spec.weights_status()}): "
                                  f"{spec.weights.fetch_command}, or leave it out with --set encoders=[...]")
        for name in self.encoder_options:
            if name not in self.encoders:
                raise ConfigError(f"encoder_options names {name!r}, which is not in encoders")
        from vfmbench.policies import method_config

        method_config(self.method, self.method_config, source="demo config method_config")
        from vfmbench.tasks.shifts import get_shift_spec

        for name in self.shifts:
            get_shift_spec(name)
        if not self.masks:
            raise ConfigError("masks: give at least one (none: unmasked)")
        from vfmbench.masking.wiring import mask_wrapper

        for name in self.masks:
            if name != "none":
                mask_wrapper(name, self.mask_reference if name != "oracle" else None)


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


@dataclass
class DatasetInfo:
    """The demo's training data."""

    path: str  # relative to the demo folder
    episodes: int
    frames: int
    fingerprint: str


@dataclass
class DemoResults:
    """``results.json`` of a demo (schema `RESULTS_SCHEMA`, documented in docs/results.md)."""

    schema: str
    created: str
    seconds: float
    config: DemoConfig
    dataset: DatasetInfo
    records: list[RunRecord]
    summary: list[SummaryRow]
    robustness_summary: list[RobustnessRow]


def _mask_dataset(dataset: Path, mask: str) -> Path:
    return dataset if mask == "none" else dataset.with_name(f"{dataset.name}.mask-{mask}")


def demo_jobs(config: DemoConfig, out: Path, dataset: Path) -> list[JobSpec]:
    """The demo's grid as jobs: every mask x encoder x seed, with the budget of its encoder kind."""
    jobs = []
    for mask in config.masks:
        jobs += _encoder_jobs(config, out, _mask_dataset(dataset, mask), "" if mask == "none" else f"_mask-{mask}")
    return jobs


def _encoder_jobs(config: DemoConfig, out: Path, dataset: Path, suffix: str) -> list[JobSpec]:
    jobs = []
    for encoder in _encoders(config):
        trainable = get_encoder_spec(encoder).trainable
        for seed in config.seeds:
            train = copy.deepcopy(config.train)
            mcfg = dict(config.method_config)
            if trainable:
                train.steps = config.trainable_steps or train.steps
                mcfg = {**mcfg, **config.trainable_method_config}
            train.eval_episodes = config.eval_episodes
            run = RunSpec(task=config.task, encoder=encoder, method=config.method, seed=seed, method_config=mcfg,
                          encoder_options=dict(config.encoder_options.get(encoder, {})), train=train)
            jobs.append(JobSpec(
                run=run, out=str(out / "runs" / f"{config.method}_{encoder}_s{seed}{suffix}"), dataset=str(dataset),
                eval=EvalSpec(episodes=config.eval_episodes, envs=min(10, config.eval_episodes),
                              robustness=list(config.shifts)),
                cache_dir=config.cache_dir,
            ))
    return jobs


def run_demo(config: DemoConfig, out: str | Path, progress: bool = True, log=print) -> DemoResults:
    """Run the grid into `out`; returns the results also written to ``out/results.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    write_json_atomic(out / "demo_config.json", asdict(config))
    data_dir = out / "data" / config.task
    jobs = demo_jobs(config, out, data_dir)
    log(f"[demo] task {config.task}, method {config.method}, encoders {', '.join(_encoders(config))}, "
        f"seeds {config.seeds}")
    dataset = collect(
        CollectConfig(task=config.task, episodes=config.episodes, seed=0, action_noise=config.action_noise,
                      task_config=config.task_config),
        data_dir,
        progress=progress,
    )
    log(f"[demo] dataset: {dataset.num_episodes} expert episodes, {dataset.n_frames} frames "
        f"(expert success {dataset.manifest.get('expert_success_rate', 1.0):.2f})")
    from vfmbench.masking.wiring import masked_dataset

    for mask in config.masks:
        if mask != "none":
            masked_dataset(data_dir, mask, config.mask_reference if mask != "oracle" else None, progress=progress)
    records: list[RunRecord] = []
    for job in jobs:
        t = time.time()
        record = run_job(dataclasses.replace(job, progress=progress))
        if ".mask-" in Path(job.dataset or "").name:  # the masking axis shows in tables as part of the label
            record.encoder_label += f" + mask {Path(job.dataset or '').name.split('.mask-')[1]}"
        record.run_dir = str(Path(record.run_dir).relative_to(out))
        records.append(record)
        log(f"[demo] {record.encoder:>18s} seed {record.seed}: success {record.success_rate:.2f} "
            f"({time.time() - t:.0f}s)")
    doc = DemoResults(
        schema=RESULTS_SCHEMA,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        seconds=round(time.time() - t0, 1),
        config=config,
        dataset=DatasetInfo(str(data_dir.relative_to(out)), dataset.num_episodes, dataset.n_frames,
                            dataset.fingerprint()),
        records=records,
        summary=summarize(records),
        robustness_summary=summarize_robustness(records),
    )
    write_json_atomic(out / "results.json", asdict(doc))
    write_report(doc, out)
    return doc


def read_results(path: str | Path) -> DemoResults:
    """A demo's ``results.json`` as typed records (errors name the file and the key)."""
    from vfmbench.utils.io import read_json

    return from_dict(DemoResults, read_json(Path(path)), source=str(path))
