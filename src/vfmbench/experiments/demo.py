"""`vfmbench demo`: the ``demo`` sweep grid (`demo_grid`): collect expert data, then one job
(`vfmbench.experiments.job`) per encoder and seed through the runs index and an executor
(`run_sweep`): train, evaluate on held-out seeds (and under shifts); write ``results.json``,
``report.md`` and a plot.

Everything lands in the output folder (``data/``, ``runs/<run>/``, ``grid.json``); rerunning the
same command resumes: jobs done are read back from the index, interrupted ones continue from
their last checkpoint, failed ones run again.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vfmbench.data.collection import open_dataset
from vfmbench.encoders import get_encoder_spec
from vfmbench.experiments.executors import Executor, InProcessExecutor, JobOutcome, run_sweep
from vfmbench.experiments.grid import (
    DatasetSettings,
    GridAxes,
    GridEval,
    GridSpec,
    Requirements,
    TrainableSettings,
    dataset_path,
)
from vfmbench.experiments.index import RunsIndex
from vfmbench.experiments.job import RunRecord
from vfmbench.reports.tables import RobustnessRow, SummaryRow, summarize, summarize_robustness, write_report
from vfmbench.tasks import TaskConfig
from vfmbench.training import TrainConfig
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError, VfmbenchError
from vfmbench.utils.io import write_json_atomic

RESULTS_SCHEMA = "vfmbench.results/2"


# EfficientNet-Lite0 sees the 84x84 frames themselves (no resize to 224: a seventh of the CPU
# cost), as random_resnet18 does
DEFAULT_ENCODER_OPTIONS: dict[str, dict[str, Any]] = {"imagenet_efficientnet_lite0": {"input_size": 84}}


@dataclass
class DemoConfig:
    """The demo's grid. Defaults are the embedded default run (about 10 minutes on 2 CPU cores)."""

    name: str = "demo"  # the sweep's name in the runs index (vfmbench report --runs sweep=NAME)
    task: str = "fetch_reach"
    encoders: list[str] = field(default_factory=lambda: ["state", "e2e_cnn", "random_resnet18",
                                                         "imagenet_efficientnet_lite0"])
    # encoder name -> its options (DEFAULT_ENCODER_OPTIONS; a default entry for an encoder left out
    # of `encoders` is dropped, a user's is an error)
    encoder_options: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_ENCODER_OPTIONS))
    include_installed: bool = True  # add every foundation encoder whose weights are installed
    method: str = "bc"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    episodes: int = 100  # expert episodes for training
    action_noise: float = 0.3  # DART noise while collecting (recorded actions are the expert's)
    eval_episodes: int = 20  # held-out evaluation episodes per run
    task_config: TaskConfig = field(default_factory=TaskConfig)
    method_config: dict[str, Any] = field(default_factory=dict)
    # batch 32 for encoders trained jointly: half the CPU time of 64 at about the same success on
    # fetch_reach (0.78 ± 0.19 against 0.87 ± 0.10 over seeds 0-2, 20 episodes each)
    trainable_method_config: dict[str, Any] = field(default_factory=lambda: {"batch_size": 32})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000))
    # steps for encoders trained jointly (None: train.steps); 2500: e2e_cnn 0.67 ± 0.02 on fetch_reach and
    # a demo of about 10 minutes on 2 cores (617 s in a fresh clone; 3000: 0.78 ± 0.15 and 634-704 s;
    # 2000: 0.45 ± 0.04 and 558 s)
    trainable_steps: int | None = 2500
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
        from vfmbench.encoders import check_encoder_options, with_installed_encoders

        in_grid = with_installed_encoders(self.encoders) if self.include_installed else list(self.encoders)
        for name in list(self.encoder_options):
            if name not in in_grid and self.encoder_options[name] == DEFAULT_ENCODER_OPTIONS.get(name):
                del self.encoder_options[name]  # the default options of an encoder the user left out
            elif name not in in_grid:
                raise ConfigError(f"encoder_options names {name!r}, which is not in encoders")
            else:
                check_encoder_options(name, self.encoder_options[name])
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
    """A smaller version of `config` (one seed, fewer episodes and steps; about 3 minutes on 2 CPU cores)."""
    q = copy.deepcopy(config)
    if q.name == "demo":
        q.name = "demo_quick"  # kept apart from the default demo's runs in the index
    q.seeds = q.seeds[:1]
    q.episodes = min(q.episodes, 40)
    q.eval_episodes = min(q.eval_episodes, 10)
    q.train.steps = min(q.train.steps, 1000)
    q.trainable_steps = min(q.trainable_steps or q.train.steps, 1200)
    return q


def demo_config_from(data: dict[str, Any] | None, source: str = "demo config") -> DemoConfig:
    return from_dict(DemoConfig, data or {}, source=source)


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


def demo_grid(config: DemoConfig) -> GridSpec:
    """The demo as a sweep grid (preset ``demo``): every mask x encoder x seed on one task, frozen
    encoders with `train`, encoders trained jointly with their own steps and method keys."""
    train = copy.deepcopy(config.train)
    train.eval_episodes = config.eval_episodes
    return GridSpec(
        name=config.name,
        description="vfmbench demo",
        axes=GridAxes(tasks=[config.task], encoders=list(config.encoders), methods=[config.method],
                      masks=list(config.masks), shifts=list(config.shifts), seeds=list(config.seeds)),
        dataset=DatasetSettings(episodes=config.episodes, action_noise=config.action_noise, seed=0,
                                task_config=copy.deepcopy(config.task_config)),
        train=train,
        method_config={config.method: dict(config.method_config)} if config.method_config else {},
        trainable=TrainableSettings(steps=config.trainable_steps, method_config=dict(config.trainable_method_config)),
        encoder_options={k: dict(v) for k, v in config.encoder_options.items()},
        include_installed=config.include_installed,
        mask_reference={config.task: config.mask_reference} if config.mask_reference else {},
        eval=GridEval(episodes=config.eval_episodes, envs=10),
        run_names="{method}_{encoder}_s{seed}{mask}",
        cache_dir=config.cache_dir,
        requires=Requirements(gpu=False, hours=0.5 if len(config.seeds) > 1 else 0.1, note="runs on CPU"),
    )


def run_demo(config: DemoConfig, out: str | Path, progress: bool = True, log=print,
             executor: Executor | None = None, index: RunsIndex | None = None) -> DemoResults:
    """Run the demo grid into `out` as a sweep (`run_sweep`: its jobs in `index`, default the
    shared runs index, run by `executor`, default in this process); returns the results also
    written to ``out/results.json``. Jobs done in an earlier run are read back from the index.
    Raises `VfmbenchError` naming the failed jobs (after writing the results of the others)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    write_json_atomic(out / "demo_config.json", asdict(config))
    grid = from_dict(GridSpec, asdict(demo_grid(config)), source="demo grid")
    log(f"[demo] task {config.task}, method {config.method}, encoders {', '.join(grid.encoders())}, "
        f"seeds {config.seeds}")

    def report(outcome: JobOutcome) -> None:
        job, rec = outcome.job, outcome.record
        if rec is not None:
            log(f"[demo] {rec.encoder:>18s} seed {rec.seed}: success {rec.success_rate:.2f} ({rec.seconds:.0f}s)")
        else:
            log(f"[demo] {job.encoder:>18s} seed {job.seed}: failed ({outcome.error.splitlines()[0]})")

    own_index = index is None
    index = index or RunsIndex()
    try:  # what this call opened, it closes; the caller's executor and index stay open
        result = run_sweep(grid, out, index, executor or InProcessExecutor(), retry_failed=True, progress=progress,
                           log=log, on_outcome=report)
    finally:
        if own_index:
            index.close()
    records: list[RunRecord] = result.records()
    root = out.resolve()
    for record in records:
        record.run_dir = str(Path(record.run_dir).relative_to(root))
    data_dir = dataset_path(grid, root, config.task)
    dataset = open_dataset(data_dir)
    doc = DemoResults(
        schema=RESULTS_SCHEMA,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        seconds=round(time.time() - t0, 1),
        config=config,
        dataset=DatasetInfo(str(data_dir.relative_to(root)), dataset.num_episodes, dataset.n_frames,
                            dataset.fingerprint()),
        records=records,
        summary=summarize(records),
        robustness_summary=summarize_robustness(records),
    )
    write_json_atomic(out / "results.json", asdict(doc))
    write_report(doc, out)
    failed = [r for r in result.rows if r.status != "done"]
    if failed:
        raise VfmbenchError(f"{len(failed)} of {len(result.rows)} demo job(s) did not finish "
                            f"({', '.join(f'{r.key}: {r.status}' for r in failed)}); results.json has the others. "
                            f"See the errors with: vfmbench runs show ID --index {index.path} "
                            f"(ids {', '.join(str(r.id) for r in failed)}); rerun the demo to retry them")
    return doc


def read_results(path: str | Path) -> DemoResults:
    """A demo's ``results.json`` as typed records (errors name the file and the key)."""
    from vfmbench.utils.io import read_json

    return from_dict(DemoResults, read_json(Path(path)), source=str(path))
