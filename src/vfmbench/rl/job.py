"""Online RL jobs and their typed records: `run_rl_job(RLJobSpec) -> RLRunRecord`.

A job trains one `RLRunSpec` into a run folder (or resumes it, or reads back a finished run)
and evaluates its latest checkpoint on held-out seeds under each of a list of shifts, with the
run's own observation wrappers (masking included), so results compare like the paper's Table 1:
trained on the clean task, evaluated under DMC-GB shifts. Spec and record are picklable
dataclasses, so sweeps can run jobs in worker processes. `evaluate_run` caches each evaluation
in the run folder (``evaluations.json``, keyed by checkpoint, shift, options, seeds), and
`return_table` lays results out as the paper does: one table per shift, a row per task, a
column per method, mean ± std over seeds (or over episodes for a single seed).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfmbench.evaluation.rollout import EVAL_SEED_BASE, evaluate
from vfmbench.rl.build import StackingPolicy
from vfmbench.rl.config import RLRunSpec
from vfmbench.rl.loop import RLTrainer, RLTrainRecord, load_rl_agent, read_rl_config, read_rl_record
from vfmbench.training.checkpoint import list_checkpoints
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError
from vfmbench.utils.io import read_json, write_json_atomic

RL_RECORD_SCHEMA = "vfmbench.rl_record/1"
DMCGB_SHIFTS = ("none", "color_hard", "video_easy", "video_hard")


@dataclass
class ShiftReturns:
    """Returns of one run's checkpoint (at `frame`) under one shift, on seeds ``seed, seed+1, ...``."""

    shift: str
    frame: int
    mean: float
    std: float
    episodes: int
    seed: int
    returns: list[float]
    shift_options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class RLJobSpec:
    """Train `run` into `out` (unless `train` is False: evaluate the run recorded there), then
    evaluate under `shifts` on `episodes` held-out episodes. `max_seconds` splits training into
    sessions (see `RLTrainer`)."""

    run: RLRunSpec
    out: str
    train: bool = True
    shifts: list[str] = field(default_factory=lambda: ["none"])
    shift_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    episodes: int = 10
    envs: int = 10
    seed: int = EVAL_SEED_BASE
    device: str = "auto"
    max_seconds: float | None = None
    progress: bool = False


@dataclass
class RLRunRecord:
    """What an RL job reports (schema `RL_RECORD_SCHEMA`)."""

    schema: str
    task: str
    agent: str
    encoder_label: str
    mask: str | None
    seed: int
    train: RLTrainRecord
    evaluations: list[ShiftReturns]
    run_dir: str
    host: str
    seconds: float

    @property
    def method(self) -> str:
        return method_label(self.agent, self.train.encoder, self.encoder_label, self.mask, self.train.mask_options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def option_tags(mask: str, mask_options: dict[str, Any]) -> list[str]:
    """``k=v`` for the options of `mask`'s wrapper that change the masks: neither the per-task
    SAM-G `reference` (a file per task, not a setting) nor an option given at its default value."""
    from vfmbench.rl.build import mask_wrappers
    from vfmbench.tasks.wrappers import WRAPPERS

    options_cls = WRAPPERS.get(mask_wrappers(mask, {})[0].name).options_cls
    defaults = {f.name: f.default for f in dataclasses.fields(options_cls)} if options_cls else {}
    return [f"{k}={v}" for k, v in sorted(mask_options.items()) if k != "reference" and defaults.get(k, object()) != v]


def method_label(agent: str, encoder: str, label: str, mask: str | None,
                 mask_options: dict[str, Any] | None = None) -> str:
    """The column name of a run: ``DrQ-v2``, ``PIE-G``, ``PIE-G [dinov2_vits14]``, ``... + SAM-G
    (oracle)``, ``... + SAM-G (oracle, dilate=2)``: random-weight encoders keep their ``(random)``
    tag and the mask's options that differ from their defaults are named (not the per-task SAM-G
    reference), so runs masked differently never share a column."""
    name = {"drqv2": "DrQ-v2", "pieg": "PIE-G"}[agent]
    if encoder == "state":
        name += " [state]"
    elif agent == "pieg" and label != "imagenet_resnet18":
        name += f" [{label}]"
    if mask:
        name += f" + SAM-G ({', '.join([mask, *option_tags(mask, mask_options or {})])})"
    return name


def evaluate_run(run_dir: str | Path, shifts: list[str], shift_options: dict[str, dict[str, Any]] | None = None,
                 episodes: int = 10, envs: int = 10, seed: int = EVAL_SEED_BASE, device: str = "auto",
                 progress: bool = False) -> list[ShiftReturns]:
    """Returns of the run's latest checkpoint under each shift (the same seeds for every shift),
    reusing evaluations already recorded in ``evaluations.json``. Unknown or inapplicable shifts
    raise `ConfigError` / `UnknownNameError` before anything runs."""
    from vfmbench.tasks import TaskConfig, get_task_spec
    from vfmbench.tasks.shifts import validate_shift

    run_dir = Path(run_dir)
    spec, doc = read_rl_config(run_dir)
    options = shift_options or {}
    allowed = get_task_spec(spec.task).shifts
    for shift in shifts:
        validate_shift(shift, options.get(shift, {}))
        if allowed is not None and shift not in allowed:
            raise ConfigError(f"shift {shift!r} does not apply to {spec.task}; its shifts: {', '.join(allowed)}")
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise ConfigError(f"{run_dir} has no checkpoint; train it first (vfmbench rl train ... --out {run_dir})")
    frame = int(ckpts[-1].name.split("_")[1])
    cache_path = run_dir / "evaluations.json"
    cache: dict[str, Any] = read_json(cache_path) if cache_path.exists() else {}
    task_config = from_dict(TaskConfig, doc["task_config"], source=f"{run_dir / 'config.json'} task_config")
    agent = fmt = None
    out = []
    for shift in shifts:
        opts = dict(options.get(shift, {}))
        key = f"{frame}|{shift}|{sorted(opts.items())}|{seed}|{episodes}"
        if key not in cache:
            if agent is None:
                agent, fmt, _, _ = load_rl_agent(run_dir, device)
            cfg = dataclasses.replace(task_config, shift=shift, shift_options=opts)
            result = evaluate(StackingPolicy(agent, fmt), spec.task, cfg, episodes=episodes, seed=seed, n_envs=envs,
                              progress=progress)
            r = np.asarray(result.returns)
            cache[key] = asdict(ShiftReturns(shift, frame, round(float(r.mean()), 2), round(float(r.std()), 2),
                                             len(r), seed, [round(float(x), 2) for x in r], opts,
                                             round(result.seconds, 1)))
            write_json_atomic(cache_path, cache)
        out.append(from_dict(ShiftReturns, cache[key], source=str(cache_path)))
    return out


def run_rl_job(spec: RLJobSpec) -> RLRunRecord:
    """Train (or resume, or read back) and evaluate the job `spec`; the record is also written to
    ``record.json`` in the run folder."""
    t0 = time.time()
    out = Path(spec.out)
    if spec.train:
        train = RLTrainer(spec.run, out, progress=spec.progress, max_seconds=spec.max_seconds).run()
    else:
        recorded, _ = read_rl_config(out)
        if recorded.task != spec.run.task or recorded.agent != spec.run.agent:
            raise ConfigError(f"{out} holds a {recorded.agent} run on {recorded.task}, not the job's")
        train = read_rl_record(out)
    evaluations = []
    if spec.episodes and spec.shifts and (train.complete or not spec.train):
        evaluations = evaluate_run(out, spec.shifts, spec.shift_options, spec.episodes, spec.envs, spec.seed,
                                   spec.device, spec.progress)
    record = RLRunRecord(RL_RECORD_SCHEMA, spec.run.task, spec.run.agent, train.encoder_label, spec.run.mask,
                         spec.run.seed, train, evaluations, str(out), platform.node(), round(time.time() - t0, 2))
    write_json_atomic(out / "record.json", record.to_dict())
    return record


def record_for_run(run_dir: str | Path, shifts: list[str], shift_options: dict[str, dict[str, Any]] | None = None,
                   episodes: int = 10, envs: int = 10, device: str = "auto", progress: bool = False) -> RLRunRecord:
    """An evaluation-only job for an existing run folder (as `vfmbench rl evaluate` runs)."""
    spec, _ = read_rl_config(run_dir)
    return run_rl_job(RLJobSpec(run=spec, out=str(run_dir), train=False, shifts=shifts,
                                shift_options=shift_options or {}, episodes=episodes, envs=envs, device=device,
                                progress=progress))


def return_table(records: list[RLRunRecord]) -> dict[str, list[dict[str, str]]]:
    """Per shift, rows of ``{"task": ..., METHOD: "mean ± std", ...}``: over seeds (the mean
    return of each run) when a task and method have several runs, else over that run's episodes."""
    cells: dict[tuple[str, str, str], list[ShiftReturns]] = defaultdict(list)
    shifts, tasks, methods = [], [], []
    for rec in records:
        for ev in rec.evaluations:
            cells[(ev.shift, rec.task, rec.method)].append(ev)
            for seq, item in ((shifts, ev.shift), (tasks, rec.task), (methods, rec.method)):
                if item not in seq:
                    seq.append(item)
    tables: dict[str, list[dict[str, str]]] = {}
    for shift in shifts:
        rows = []
        for task in tasks:
            row = {"task": task}
            for method in methods:
                evs = cells.get((shift, task, method), [])
                if not evs:
                    row[method] = "-"
                elif len(evs) == 1:
                    row[method] = f"{evs[0].mean:.0f} ± {evs[0].std:.0f} ({evs[0].episodes} ep)"
                else:
                    means = np.array([e.mean for e in evs])
                    row[method] = f"{means.mean():.0f} ± {means.std():.0f} ({len(evs)} seeds)"
            rows.append(row)
        tables[shift] = rows
    return tables
