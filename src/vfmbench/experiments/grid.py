"""Sweep grids: a typed grid spec (from YAML, like every config) that expands into jobs.

A grid names axes (tasks x encoders x methods x masks x seeds, each combination one job, minus
the `exclude` patterns; `shifts` are evaluated inside every job, paired with the clean task),
fixed settings (the training data, the train and evaluation settings) and what it needs to run
(`requires`: GPU, an hours estimate). `kind: offline` grids run `run_job` (policy learning on
expert data the sweep collects, or imported datasets named in `dataset.paths`); `kind: rl` grids
run `run_rl_job` (online RL, where `methods` are agents, `drqv2` or `pieg`, and encoder
`default` is the agent's own). `expand` turns a grid into `GridJob`s, each a picklable spec plus
its axis values and a stable hash; `executors.run_sweep` runs them through an index and an
executor. Named grids (`GRID_PRESETS`) cover the demo and the papers' tables.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vfmbench.evaluation.rollout import EVAL_SEED_BASE
from vfmbench.experiments.job import EvalSpec, JobSpec, RunRecord, run_job
from vfmbench.registry import Registry
from vfmbench.tasks import TaskConfig
from vfmbench.training import RunSpec, TrainConfig
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError

AXES = ("task", "encoder", "method", "mask", "seed")
RL_DEFAULT_ENCODER = "default"  # an RL grid's encoder value for the agent's own (conv for drqv2, ResNet-18 for pieg)


@dataclass
class GridAxes:
    """The values each job combination is drawn from (their product, minus `exclude`)."""

    tasks: list[str]
    encoders: list[str] = field(default_factory=lambda: ["state"])
    methods: list[str] = field(default_factory=lambda: ["bc"])  # rl grids: agents (drqv2, pieg)
    masks: list[str] = field(default_factory=lambda: ["none"])  # none, oracle or a SAM-G segmenter
    shifts: list[str] = field(default_factory=list)  # evaluated inside every job, paired with none
    seeds: list[int] = field(default_factory=lambda: [0])


@dataclass
class DatasetSettings:
    """The training data of an offline grid: per task, the folder in `paths`, else expert episodes
    the sweep collects (resumably) into ``OUT/data/<task>``; masked copies beside it."""

    episodes: int = 100
    action_noise: float = 0.0  # DART noise while collecting (recorded actions are the expert's)
    seed: int = 0  # collection seeds seed, seed+1, ... (evaluation seeds are held out)
    task_config: TaskConfig = field(default_factory=TaskConfig)
    paths: dict[str, str] = field(default_factory=dict)  # task -> an existing (e.g. imported) dataset


@dataclass
class TrainableSettings:
    """Overrides for encoders trained jointly (e2e_*): their own step count and method keys."""

    steps: int | None = None  # None: train.steps
    method_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class GridEval:
    """Held-out evaluation of every job (seeds seed, seed+1, ...; never collection seeds)."""

    episodes: int = 20
    envs: int = 10
    seed: int = EVAL_SEED_BASE


@dataclass
class RLSettings:
    """Settings of an rl grid's runs (docs/rl.md)."""

    frames: int | None = None  # None: the paper's budget per task (1M, 3M for cheetah and quadruped)
    preset: Literal["drqv2", "samg"] = "drqv2"
    agent_config: dict[str, Any] = field(default_factory=dict)  # over the preset's values
    eval_every_frames: int = 10_000
    device: str = "auto"


@dataclass
class Requirements:
    """What a grid needs, shown by `vfmbench sweep presets` and checked before any work."""

    gpu: bool = False
    hours: float | None = None  # estimated wall time (on the machine `gpu` says)
    note: str = ""


@dataclass
class GridSpec:
    """A sweep grid (see the module docstring and docs/sweeps.md)."""

    name: str
    axes: GridAxes
    kind: Literal["offline", "rl"] = "offline"
    description: str = ""
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    method_config: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> its config keys
    train_preset: str | None = None  # a policy preset (vfmbench methods presets); {method}, {task} filled in
    trainable: TrainableSettings = field(default_factory=TrainableSettings)
    encoder_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # encoder -> its options
    include_installed: bool = False  # add every foundation encoder whose weights are installed
    mask_reference: dict[str, str] = field(default_factory=dict)  # task -> SAM-G reference (not for oracle)
    eval: GridEval = field(default_factory=GridEval)
    rl: RLSettings = field(default_factory=RLSettings)
    # patterns of axis values (task, encoder, method, mask, seed); a job matching every key of one is left out
    exclude: list[dict[str, Any]] = field(default_factory=list)
    run_names: str = "{task}/{method}_{encoder}_s{seed}{mask}"  # run folder under OUT/runs; {mask}: '' or _mask-M
    cache_dir: str | None = None  # embedding cache (None: under VFMBENCH_HOME)
    requires: Requirements = field(default_factory=Requirements)

    def validate(self) -> None:
        """Names against the registries and the grid's shape; raises `ConfigError` /
        `UnknownNameError` naming the key. Weights and GPUs are checked by `check_available`."""
        from vfmbench.encoders import get_encoder_spec
        from vfmbench.tasks import get_task_spec
        from vfmbench.tasks.shifts import get_shift_spec

        from vfmbench.utils.errors import UnknownNameError, VfmbenchError

        def check(key: str, values: list[Any], lookup: Callable[[Any], Any]) -> None:
            """`lookup` each value; an unknown one raises naming its key, e.g. axes.encoders[1]."""
            for i, value in enumerate(values):
                try:
                    lookup(value)
                except UnknownNameError as exc:
                    raise UnknownNameError(f"{key}[{i}]: {exc}") from None
                except VfmbenchError as exc:
                    if str(exc).startswith(key):
                        raise
                    raise ConfigError(f"{key}[{i}] {value!r}: {exc}") from None

        a = self.axes
        for key in ("tasks", "encoders", "methods", "masks", "seeds"):
            if not getattr(a, key):
                raise ConfigError(f"axes.{key} is empty; give at least one value")
        check("axes.tasks", a.tasks, get_task_spec)
        check("axes.shifts", a.shifts, get_shift_spec)
        if self.kind == "offline":
            from vfmbench.policies import get_method_spec, method_config

            check("axes.encoders", a.encoders, get_encoder_spec)
            check("axes.methods", a.methods, get_method_spec)
            for method in a.methods:
                method_config(method, self.method_config.get(method, {}), source=f"method_config.{method}")
            if self.train_preset is not None:
                from vfmbench.policies.presets import get_preset

                for method in a.methods:
                    for task in a.tasks:
                        get_preset(self.train_preset.format(method=method, task=task))
        else:
            for i, agent in enumerate(a.methods):
                if agent not in ("drqv2", "pieg"):
                    raise ConfigError(f"axes.methods[{i}]: unknown agent {agent!r} (kind rl: methods are agents); "
                                      "valid: drqv2, pieg")
            check("axes.encoders", [e for e in a.encoders if e not in (RL_DEFAULT_ENCODER, "conv", "state")],
                  get_encoder_spec)
        from vfmbench.encoders import check_encoder_options

        grid_encoders = self.encoders()
        for name, options in self.encoder_options.items():
            if name not in grid_encoders:
                raise ConfigError(f"encoder_options.{name}: {name!r} is not in axes.encoders")
            check_encoder_options(name, options)
        for name in self.method_config:
            if name not in a.methods:
                raise ConfigError(f"method_config.{name}: {name!r} is not in axes.methods")
        for i, pattern in enumerate(self.exclude):
            unknown = sorted(set(pattern) - set(AXES))
            if unknown or not pattern:
                raise ConfigError(f"exclude[{i}]: must map some of {', '.join(AXES)} to values, "
                                  f"got {pattern!r}")
        if self.eval.episodes < 1 or self.eval.envs < 1:
            raise ConfigError("eval: eval.episodes and eval.envs must be at least 1")
        fields = {"task", "method", "encoder", "seed", "mask"}
        try:
            self.run_names.format(task="t", method="m", encoder="e", seed=0, mask="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"run_names: {self.run_names!r} may use only "
                              f"{{{'}, {'.join(sorted(fields))}}}: {exc}") from None
        from vfmbench.masking.segmenters import SEGMENTERS

        for i, mask in enumerate(a.masks):
            if mask != "none":
                try:
                    SEGMENTERS.get(mask)
                except UnknownNameError as exc:
                    raise UnknownNameError(f"axes.masks[{i}]: {exc} (or none)") from None

    def encoders(self) -> list[str]:
        """The encoder axis, with installed foundation encoders when `include_installed`."""
        names = list(self.axes.encoders)
        if self.include_installed and self.kind == "offline":
            from vfmbench.encoders import with_installed_encoders

            names = with_installed_encoders(names)
        return names


def load_grid(path: str | Path, overrides: list[str] | None = None) -> GridSpec:
    """A grid from a YAML file (and ``KEY=VALUE`` overrides); errors name the file and the key."""
    from vfmbench.utils.config import apply_overrides, load_yaml

    data = apply_overrides(load_yaml(path), overrides or [])
    return from_dict(GridSpec, data, source=str(path))


def check_available(grid: GridSpec) -> None:
    """Raise `ConfigError` listing everything the grid needs that is missing (weights with their
    fetch commands, a CUDA GPU, imported datasets, SAM-G references), before any work starts."""
    import torch

    from vfmbench.encoders import get_encoder_spec

    missing = []
    if grid.kind == "offline":
        for name in grid.encoders():
            spec = get_encoder_spec(name)
            if spec.weights is not None and spec.weights_status() != "installed":
                missing.append(f"encoder {name} needs its weights ({spec.weights_status()}): {spec.weights.fetch_command}")
        for task, path in grid.dataset.paths.items():
            if not (Path(path) / "manifest.json").exists():
                missing.append(f"dataset.paths.{task}: {path} is not a dataset (import or collect it first; "
                               "docs/datasets.md)")
        from vfmbench.tasks import get_task_spec

        for task in grid.axes.tasks:
            if task not in grid.dataset.paths and not get_task_spec(task).expert:
                missing.append(f"task {task} has no scripted expert to collect from: give dataset.paths.{task} "
                               "(an imported dataset, docs/datasets.md)")
    else:
        for name in grid.axes.encoders:
            if name not in (RL_DEFAULT_ENCODER, "conv", "state"):
                spec = get_encoder_spec(name)
                if spec.weights is not None and spec.weights_status() != "installed":
                    missing.append(f"encoder {name} needs its weights: {spec.weights.fetch_command}")
    from vfmbench.masking.segmenters import SEGMENTERS

    for mask in grid.axes.masks:
        if mask in ("none", "oracle"):
            continue
        seg = SEGMENTERS.get(mask)
        if seg.weights_status() != "installed":
            from vfmbench.weights import WEIGHTS

            missing.append(f"mask {mask} needs the weights {seg.weights}: {WEIGHTS.get(seg.weights).fetch_command}")
        for task in grid.axes.tasks:
            if task not in grid.mask_reference:
                missing.append(f"mask {mask} needs a SAM-G reference for {task}: set mask_reference.{task} "
                               "(vfmbench mask reference; docs/masking.md)")
    if grid.requires.gpu and not torch.cuda.is_available():
        missing.append("a CUDA GPU (requires.gpu); run it on a GPU machine or a Ray cluster with GPUs")
    if missing:
        raise ConfigError(f"grid {grid.name!r} cannot run here; missing:\n  - " + "\n  - ".join(missing))


@dataclass
class GridJob:
    """One job of a sweep: its axis values, its picklable spec (`JobSpec` for offline grids,
    `RLJobSpec` for rl grids) and `key`, its run folder under ``OUT/runs``."""

    sweep: str
    kind: Literal["offline", "rl"]
    key: str
    task: str
    encoder: str
    method: str
    mask: str
    seed: int
    spec: Any  # JobSpec | RLJobSpec

    @property
    def spec_hash(self) -> str:
        """sha256 (hex) of the spec's canonical JSON, progress flag left out: the job's identity in the index."""
        return spec_hash(self.kind, self.spec)

    @property
    def uses_cuda(self) -> bool | None:
        """True / False when the job's device is named, None for ``auto`` (CUDA if the worker has one)."""
        device = self.spec.run.train.device if self.kind == "offline" else self.spec.device
        return None if device == "auto" else device.startswith("cuda")


def spec_hash(kind: str, spec: Any) -> str:
    data = asdict(spec)
    data.pop("progress", None)
    text = json.dumps({"kind": kind, "spec": data}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def spec_from_json(kind: str, data: dict[str, Any], source: str) -> Any:
    """A job spec back from its JSON (as the index stores it)."""
    if kind == "rl":
        from vfmbench.rl import RLJobSpec

        return from_dict(RLJobSpec, data, source=source)
    return from_dict(JobSpec, data, source=source)


def record_from_json(kind: str, data: dict[str, Any], source: str) -> Any:
    """A job's record back from its JSON: `RunRecord` (offline) or `RLRunRecord` (rl)."""
    if kind == "rl":
        from vfmbench.rl.job import RLRunRecord

        return from_dict(RLRunRecord, data, source=source)
    return from_dict(RunRecord, data, source=source)


def run_grid_job(job: GridJob) -> Any:
    """Run one grid job where this is called (any process): `run_job` or `run_rl_job`; a masked
    offline job's encoder label gets ``+ mask M`` so tables tell masked rows apart."""
    if job.kind == "rl":
        from vfmbench.rl import run_rl_job

        return run_rl_job(job.spec)
    record = run_job(job.spec)
    if job.mask != "none":
        record.encoder_label += f" + mask {job.mask}"
    return record


def dataset_path(grid: GridSpec, out: Path, task: str, mask: str = "none") -> Path:
    """Where the grid's training data for (`task`, `mask`) lies."""
    base = Path(grid.dataset.paths[task]) if task in grid.dataset.paths else out / "data" / task
    return base if mask == "none" else base.with_name(f"{base.name}.mask-{mask}")


def prepare_data(grid: GridSpec, out: Path, progress: bool = True, log: Callable[[str], None] = print,
                 workers: int = 1) -> dict[str, int]:
    """Collect (resumably) each task's expert data and its masked copies; returns task -> frames.
    Runs from the sweep's own process (datasets are shared by every job of their task), the
    episodes in `workers` processes."""
    from vfmbench.data.collection import CollectConfig, collect, open_dataset
    from vfmbench.masking.wiring import masked_dataset

    frames = {}
    if grid.kind != "offline":
        return frames
    for task in grid.axes.tasks:
        path = dataset_path(grid, out, task)
        if task in grid.dataset.paths:
            ds = open_dataset(path)
        else:
            d = grid.dataset
            ds = collect(CollectConfig(task=task, episodes=d.episodes, seed=d.seed, action_noise=d.action_noise,
                                       task_config=d.task_config), path, progress=progress, workers=workers)
            log(f"[sweep] {task}: {ds.num_episodes} expert episodes, {ds.n_frames} frames "
                f"(expert success {ds.manifest.get('expert_success_rate', 1.0):.2f})")
        frames[task] = ds.n_frames
        for mask in grid.axes.masks:
            if mask != "none":
                masked_dataset(path, mask, grid.mask_reference.get(task) if mask != "oracle" else None,
                               progress=progress)
    return frames


def _excluded(grid: GridSpec, values: dict[str, Any]) -> bool:
    return any(all(values[k] == v for k, v in pattern.items()) for pattern in grid.exclude)


def expand(grid: GridSpec, out: str | Path, frames: dict[str, int] | None = None) -> list[GridJob]:
    """The grid's jobs, in axis order (mask, task, method, encoder, seed), run folders under
    ``out/runs``. `frames`: task -> training frames, needed only with `train_preset` (epochs
    become steps). Raises `ConfigError` when two jobs would share a run folder."""
    out = Path(out).resolve()
    jobs = []
    for mask in grid.axes.masks:
        for task in grid.axes.tasks:
            for method in grid.axes.methods:
                for encoder in grid.encoders():
                    for seed in grid.axes.seeds:
                        values = {"task": task, "encoder": encoder, "method": method, "mask": mask, "seed": seed}
                        if _excluded(grid, values):
                            continue
                        key = grid.run_names.format(**{**values, "mask": "" if mask == "none" else f"_mask-{mask}"})
                        run_dir = out / "runs" / key
                        spec = (_offline_spec(grid, out, values, run_dir, frames) if grid.kind == "offline"
                                else _rl_spec(grid, values, run_dir))
                        jobs.append(GridJob(grid.name, grid.kind, key, task, encoder, method, mask, seed, spec))
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"grid {grid.name!r}: run_names {grid.run_names!r} gives two jobs the run folder {dup!r}; "
                          "add the axis that tells them apart")
    return jobs


def _offline_spec(grid: GridSpec, out: Path, v: dict[str, Any], run_dir: Path,
                  frames: dict[str, int] | None) -> JobSpec:
    from vfmbench.encoders import get_encoder_spec

    train = copy.deepcopy(grid.train)
    mcfg = dict(grid.method_config.get(v["method"], {}))
    if get_encoder_spec(v["encoder"]).trainable:
        train.steps = grid.trainable.steps or train.steps
        mcfg = {**mcfg, **grid.trainable.method_config}
    run_data: dict[str, Any] = {"task": v["task"], "encoder": v["encoder"], "method": v["method"], "seed": v["seed"],
                                "method_config": mcfg, "encoder_options": dict(grid.encoder_options.get(v["encoder"], {})),
                                "train": asdict(train)}
    if grid.train_preset is not None:
        from vfmbench.policies.presets import apply_preset

        if frames is None or v["task"] not in frames:
            raise ConfigError(f"grid {grid.name!r}: train_preset needs the dataset size of {v['task']}; "
                              "prepare the data first (prepare_data)")
        preset = grid.train_preset.format(method=v["method"], task=v["task"])
        # the grid's own train keys win only where they differ from TrainConfig's defaults
        own = {k: val for k, val in asdict(train).items() if val != getattr(TrainConfig(), k)}
        run_data = apply_preset(preset, {**run_data, "train": own}, frames[v["task"]])
    run = from_dict(RunSpec, run_data, source=f"grid {grid.name} job {v}")
    ev = grid.eval
    return JobSpec(run=run, out=str(run_dir), dataset=str(dataset_path(grid, out, v["task"], v["mask"]).resolve()),
                   eval=EvalSpec(episodes=ev.episodes, envs=min(ev.envs, ev.episodes), seed=ev.seed,
                                 robustness=list(grid.axes.shifts)),
                   cache_dir=grid.cache_dir)


def _rl_spec(grid: GridSpec, v: dict[str, Any], run_dir: Path) -> Any:
    from vfmbench.rl import RLJobSpec, RLRunSpec, default_frames, preset_overrides

    r = grid.rl
    data: dict[str, Any] = {
        "task": v["task"], "agent": v["method"], "seed": v["seed"], "device": r.device, "preset": r.preset,
        "frames": r.frames or default_frames(v["task"]), "eval_every_frames": r.eval_every_frames,
        "eval_episodes": grid.eval.episodes, "eval_envs": min(grid.eval.envs, grid.eval.episodes),
        "agent_config": {**preset_overrides(r.preset, v["method"], v["task"]), **r.agent_config},
        "task_config": asdict(grid.dataset.task_config),
    }
    if v["encoder"] != RL_DEFAULT_ENCODER:
        data["encoder"] = v["encoder"]
    if v["mask"] != "none":
        data["mask"] = v["mask"]
        if v["mask"] != "oracle":
            data["mask_options"] = {"reference": grid.mask_reference[v["task"]]}
    run = from_dict(RLRunSpec, data, source=f"grid {grid.name} job {v}")
    run.validate()
    shifts = ["none", *[s for s in grid.axes.shifts if s != "none"]]
    return RLJobSpec(run=run, out=str(run_dir), shifts=shifts, episodes=grid.eval.episodes,
                     envs=min(grid.eval.envs, grid.eval.episodes), seed=grid.eval.seed, device=r.device)


# -- presets ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridPreset:
    """A named grid: `build()` returns its spec as a mapping (the YAML a user would write)."""

    name: str
    description: str
    build: Callable[[], dict[str, Any]]

    def grid(self, overrides: list[str] | None = None) -> GridSpec:
        from vfmbench.utils.config import apply_overrides

        return from_dict(GridSpec, apply_overrides(self.build(), overrides or []), source=f"preset {self.name}")


GRID_PRESETS: Registry[GridPreset] = Registry("grid preset")


def _demo_preset(quick: bool) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        from vfmbench.experiments.demo import DemoConfig, demo_grid, quick_config

        config = DemoConfig(include_installed=False)
        grid = demo_grid(quick_config(config) if quick else config)
        grid.name = "demo_quick" if quick else "demo"
        return asdict(grid)

    return build


GRID_PRESETS.register(GridPreset("demo", "the default demo: fetch_reach, BC, state / e2e_cnn / random_resnet18 / "
                                 "EfficientNet-Lite0, 3 seeds (CPU, about 13 min on 2 cores with 2 workers)", _demo_preset(False)))
GRID_PRESETS.register(GridPreset("demo_quick", "vfmbench demo --quick: the demo with 1 seed and smaller budgets "
                                 "(CPU, about 3 min on 2 cores)", _demo_preset(True)))

_P000_ENCODERS = ["e2e_resnet18", "sam_vit_b", "dinov2_vitb14_reg", "clip_vitb16", "mae_vitb16", "mvp_vitb16",
                  "r3m_resnet50"]
_P001_ENCODERS = ["e2e_resnet18", "imagenet_resnet18", "r3m_resnet18", "mvp_vits16", "vip_resnet50"]
_DMCGB_TASKS = ["dmc_walker_walk", "dmc_walker_stand", "dmc_cartpole_swingup", "dmc_cartpole_balance",
                "dmc_cheetah_run", "dmc_hopper_stand", "dmc_finger_spin", "dmc_quadruped_walk"]


def _p000_table1() -> dict[str, Any]:
    return {
        "name": "paper000_table1", "description": "paper 000 BC comparison: frozen foundation encoders vs end to end "
        "on Fetch push / pick-and-place, paper 000 A.2 training settings, 2900 noisy expert trajectories per task",
        "axes": {"tasks": ["fetch_push", "fetch_pick_and_place"], "encoders": _P000_ENCODERS, "methods": ["bc"],
                 "seeds": [0, 1, 2]},
        "dataset": {"episodes": 2900, "action_noise": 0.3},
        "train_preset": "paper000_{method}_{task}", "train": {"device": "auto", "eval_episodes": 50},
        "eval": {"episodes": 100, "envs": 20},
        "requires": {"gpu": True, "hours": 60, "note": "weights of 6 foundation encoders (vfmbench weights download)"},
    }


def _p001_table3() -> dict[str, Any]:
    return {
        "name": "paper001_table3", "description": "paper 001 learners x encoders: BC, BC-RNN, Diffusion Policy "
        "(conv, transformer) on Fetch push / pick-and-place with paper 001 §IV-A settings (crops, best-3 of "
        "checkpoints)",
        "axes": {"tasks": ["fetch_push", "fetch_pick_and_place"], "encoders": _P001_ENCODERS,
                 "methods": ["bc", "bc_rnn", "dp_conv", "dp_transformer"], "seeds": [0, 1, 2]},
        "dataset": {"episodes": 200, "action_noise": 0.3},
        "train_preset": "paper001_{method}", "train": {"device": "auto"},
        "eval": {"episodes": 50, "envs": 25},
        "requires": {"gpu": True, "hours": 150, "note": "weights of 4 pretrained encoders (vfmbench weights download)"},
    }


def _samg_table1() -> dict[str, Any]:
    return {
        "name": "samg_table1", "kind": "rl", "description": "paper 002 Table 1: DrQ-v2 and PIE-G, with and without "
        "SAM-G masking, 8 DMControl tasks, evaluated under DMC-GB shifts",
        "axes": {"tasks": _DMCGB_TASKS, "encoders": [RL_DEFAULT_ENCODER], "methods": ["drqv2", "pieg"],
                 "masks": ["none", "sam_vit_b"], "shifts": ["color_hard", "video_easy", "video_hard"],
                 "seeds": [0, 1, 2]},
        "rl": {"preset": "samg"}, "eval": {"episodes": 100, "envs": 20},
        "requires": {"gpu": True, "hours": 100, "note": "sam_vit_b weights, one SAM-G reference per task "
                     "(mask_reference.TASK), DMC-GB clip folders for the video shifts"},
    }


GRID_PRESETS.register(GridPreset("paper000_table1", _p000_table1()["description"], _p000_table1))
GRID_PRESETS.register(GridPreset("paper001_table3", _p001_table3()["description"], _p001_table3))
GRID_PRESETS.register(GridPreset("samg_table1", _samg_table1()["description"], _samg_table1))


def count_jobs(grid: GridSpec) -> int:
    """How many jobs the grid expands to (before exclusions: an upper bound)."""
    a = grid.axes
    return math.prod(len(x) for x in (a.tasks, grid.encoders(), a.methods, a.masks, a.seeds))


__all__ = ["GRID_PRESETS", "GridAxes", "GridEval", "GridJob", "GridPreset", "GridSpec", "check_available", "expand",
           "load_grid", "prepare_data", "run_grid_job"]
