"""One trainer for every method and encoder.

Frozen encoders: embeddings come from the cache (computed once per encoder x dataset) and
training runs on in-memory feature tensors. Trainable encoders: frames stay uint8 in memory,
each batch is augmented (random shift or random crop) and encoded with gradients flowing
into the encoder. Windows of observations/actions follow the policy's offsets.

A run folder holds ``config.json``, ``metrics.jsonl``, ``checkpoints/`` and, when finished,
``result.json``. Running the same config into the same folder resumes from the latest
checkpoint; a finished run is returned as it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from vfmbench.agents import Agent, make_agent
from vfmbench.cache import EmbeddingCache
from vfmbench.data.episodes import EpisodeDataset
from vfmbench.encoders import encoder_label
from vfmbench.encoders.augment import AugmentKind
from vfmbench.policies.base import Policy, get_method_spec
from vfmbench.tasks import TaskSpaces
from vfmbench.training.checkpoint import (
    list_checkpoints,
    remove_stale_temporaries,
    load_model_state,
    load_training_state,
    prune_checkpoints,
    save_checkpoint,
)
from vfmbench.utils.config import from_dict
from vfmbench.utils.config import first_difference
from vfmbench.utils.errors import ConfigError, TrainingDivergedError, VfmbenchError
from vfmbench.utils.io import read_json, write_json_atomic
from vfmbench.utils.seeding import seed_everything

if TYPE_CHECKING:  # the trainer only reads the results its evaluation callback returns
    from vfmbench.evaluation.rollout import EvalResult

log = logging.getLogger(__name__)

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


@dataclass
class TrainConfig:
    """How to train (the method's own options, e.g. lr and batch size, live in its config)."""

    steps: int = 2000
    augment: AugmentKind = "shift"  # trainable encoders only
    shift_pad: int = 4  # random shift: pad by this many pixels and crop back (DrQ)
    crop_size: int = 76  # random crop size (paper 001); evaluation uses the centre crop
    checkpoint_every: int = 500
    eval_every: int = 0  # 0: evaluate only the final policy
    eval_episodes: int = 20
    eval_envs: int = 10
    best_k: int = 3  # paper 001 protocol: report the mean of the best k evaluated checkpoints
    log_every: int = 50
    device: str = "auto"
    embed_batch_size: int = 64
    precision: str = "float32"  # "bfloat16": the training steps' forward passes under bf16 autocast
    compile: bool = False  # torch.compile the policy's trained networks (and a trained encoder) first
    compile_mode: str = "default"  # torch.compile's mode; "reduce-overhead" adds CUDA graphs

    def __post_init__(self) -> None:
        self.validate()  # also when built in Python, not only from a config file

    def validate(self) -> None:
        positive = ("steps", "checkpoint_every", "log_every", "eval_envs", "best_k", "crop_size", "embed_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("eval_every", "eval_episodes", "shift_pad"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be 0 or more, got {getattr(self, name)}")
        resolve_device(self.device, available=False)  # a clear error for names that are no device
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"train.compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.compile_mode != "default" and not self.compile:
            raise ConfigError(f"train.compile_mode {self.compile_mode!r} applies only when compiling: "
                              "also set train.compile=true")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass
class RunSpec:
    """Everything that defines one training run."""

    task: str
    encoder: str
    method: str = "bc"
    seed: int = 0
    pretrained: bool | None = None
    encoder_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"pooling": "mean"}
    method_config: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)


def compile_trained_networks(agent: Agent, mode: str = "default") -> None:
    """``torch.compile`` in place (`nn.Module.compile`, so state-dict keys and checkpoints are
    unchanged) every sub-network of the policy that has trainable parameters, and the encoder
    when it trains jointly; frozen copies such as target networks and EMA averages stay eager.
    Meant for GPUs, where small networks are bound by kernel launches (`benchmarks/learners.py
    --variant compiled:train.compile=true` measures it); the first steps then take a minute of
    compiling. `mode` is torch.compile's (`COMPILE_MODES`): ``reduce-overhead`` also records the
    networks' forward and backward passes as CUDA graphs, one launch each instead of hundreds."""
    for module in agent.policy.children():
        if any(p.requires_grad for p in module.parameters()):
            module.compile(mode=mode)
    if agent.encoder.trainable:
        agent.encoder.compile(mode=mode)


def resolve_device(name: str, available: bool = True) -> torch.device:
    """``auto`` (the GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``; `ConfigError` for
    anything else and (with `available`) for a GPU this torch build or machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"train.device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device {name!r}: vfmbench runs on cpu or cuda (or auto)")
    if device.type == "cuda" and available:
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device {name!r}: this machine or torch build has no CUDA GPU "
                              f"(torch {torch.__version__}); use train.device=cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"train.device {name!r}: there are {torch.cuda.device_count()} GPUs")
    return device


def build_agent(spec: RunSpec, spaces: TaskSpaces) -> Agent:
    """The untrained agent of `spec` for a task with `spaces`."""
    t = spec.train
    return make_agent(spec.encoder, spec.method, spaces, pretrained=spec.pretrained,
                      encoder_options=spec.encoder_options, method_config_data=spec.method_config,
                      augment=t.augment, shift_pad=t.shift_pad, crop_size=t.crop_size)


@dataclass
class EvalPoint:
    """Success (and mean return) of the policy at one training step."""

    step: int
    success_rate: float
    mean_return: float | None = None


@dataclass
class TrainRecord:
    """What training produced (``result.json`` of a run folder, schema `TRAIN_SCHEMA`)."""

    schema: str
    encoder_label: str  # the encoder's name, "(random, k=v)": random weights of a pretrained model, options given
    pretrained: bool
    goal_conditioned: bool
    steps: int
    batch_size: int
    augment: str  # the augmentation of a jointly trained encoder; "cached" for frozen ones
    evals: list[EvalPoint]
    best_k: int
    best_k_mean_success: float | None
    train_seconds: float
    prepare_seconds: float
    device: str
    precision: str = "float32"  # train.precision
    compiled: bool = False  # train.compile

    @property
    def final_success(self) -> float | None:
        return self.evals[-1].success_rate if self.evals else None


TRAIN_SCHEMA = "vfmbench.train/1"
EvaluateFn = Callable[[Agent, int], "EvalResult"]


class Trainer:
    """Trains `spec` on `dataset` into `run_dir` (resumable)."""

    def __init__(self, spec: RunSpec, dataset: EpisodeDataset, run_dir: str | Path,
                 cache: EmbeddingCache | None = None, progress: bool = True):
        self.spec, self.dataset, self.run_dir = spec, dataset, Path(run_dir)
        self.cache = cache or EmbeddingCache()
        self.progress = progress
        self.device = resolve_device(spec.train.device)
        self.final_evaluation: EvalResult | None = None  # the last evaluation `run` made

    # -- data ---------------------------------------------------------------------------
    def _windows(self, idx: np.ndarray, offsets: tuple[int, ...], starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        w = idx[:, None] + np.asarray(offsets)[None]
        return np.clip(w, starts[:, None], ends[:, None] - 1)

    def _prepare(self, agent: Agent) -> dict[str, Any]:
        ds = self.dataset
        key = agent.input_key
        goal = agent.policy.dims.goal_conditioned
        data: dict[str, Any] = {}
        data["actions"] = torch.from_numpy(ds.load("actions").astype(np.float32)).to(self.device)
        agent.policy.fit_actions(data["actions"])
        proprio = ds.load("proprio").astype(np.float32)
        agent.proprio_norm.fit(proprio)
        data["proprio"] = agent.proprio_norm(torch.from_numpy(proprio).to(self.device))
        if agent.encoder.trainable:
            data["raw"] = torch.from_numpy(ds.load(key)).to(self.device)
            if goal:
                data["goal_raw"] = torch.from_numpy(ds.load("goal_" + key)).to(self.device)
        else:
            kw = dict(batch_size=self.spec.train.embed_batch_size, device=self.device, progress=self.progress)
            feats = self.cache.get_or_compute(agent.encoder, ds, key, **kw)
            goal_feats = self.cache.get_or_compute(agent.encoder, ds, "goal_" + key, **kw) if goal else None
            agent.feature_norm.fit(feats)
            data["features"] = agent.feature_norm(torch.from_numpy(feats).to(self.device))
            if goal_feats is not None:
                data["goal_features"] = agent.feature_norm(torch.from_numpy(goal_feats).to(self.device))
        ep = ds.episode_index()
        data["episode"] = ep
        data["starts"] = ds.episode_starts[ep]
        data["ends"] = (ds.episode_starts + ds.episode_lengths)[ep]
        # window starts: every frame, or those whose action window runs at most `action_pad_after` past the end
        frames = np.arange(len(ep))
        pad = agent.policy.action_pad_after
        if pad is None:
            data["window_starts"] = frames
        else:
            data["window_starts"] = frames[frames + max(agent.policy.action_offsets) <= data["ends"] - 1 + pad]
        return data

    def _batch(self, agent: Agent, data: dict[str, Any], rng: np.random.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        policy = agent.policy
        idx = data["window_starts"][rng.integers(0, len(data["window_starts"]), size=batch_size)]
        starts, ends = data["starts"][idx], data["ends"][idx]
        obs_w = torch.from_numpy(self._windows(idx, policy.obs_offsets, starts, ends)).to(self.device)
        act_w = torch.from_numpy(self._windows(idx, policy.action_offsets, starts, ends)).to(self.device)
        batch = {"actions": data["actions"][act_w], "proprio": data["proprio"][obs_w]}
        episodes = torch.from_numpy(data["episode"][idx]).to(self.device)
        if "raw" in data:
            b, t = obs_w.shape
            frames = data["raw"][obs_w.reshape(-1)]
            batch["features"] = agent.encoder(frames).reshape(b, t, -1)
            if "goal_raw" in data:
                batch["goal"] = agent.encoder(data["goal_raw"][episodes])
        else:
            batch["features"] = data["features"][obs_w]
            if "goal_features" in data:
                batch["goal"] = data["goal_features"][episodes]
        return batch

    # -- loop ---------------------------------------------------------------------------
    def run(self, evaluate_fn: EvaluateFn | None = None) -> TrainRecord:
        """Train (or resume) and return the run's `TrainRecord` (also written to ``result.json``).

        evaluate_fn(agent, step) -> EvalResult, called every `train.eval_every` steps and after the
        last step (after that step's checkpoint is written); the last result is kept in
        `final_evaluation`. A finished run is read back. The run is checked (method config,
        encoder, dataset fit) before anything is written, so a refused command leaves no trace.
        A resumed run continues exactly where the uninterrupted one would be: same batches, same
        random numbers, same weights (on the CPU), no repeated metrics rows.
        Raises `TrainingDivergedError` when a loss becomes NaN or infinite.
        """
        spec, cfg = self.spec, self.spec.train
        result_path = self.run_dir / "result.json"
        config_record = json.loads(json.dumps(
            {"spec": asdict(spec), "dataset": str(self.dataset.root.resolve()), "dataset_fingerprint": self.dataset.fingerprint(),
             "task": self.dataset.task, "task_config": self.dataset.header.get("task_config", {})}))
        config_path = self.run_dir / "config.json"
        if not config_path.exists() and list_checkpoints(self.run_dir):
            raise VfmbenchError(f"{self.run_dir} holds checkpoints but no config.json, so nothing says which run they "
                                "belong to; train into a new folder")
        if config_path.exists():
            old = read_run_config(self.run_dir)
            old["spec"] = _with_train_defaults(old.get("spec"))
            for key in ("spec", "dataset_fingerprint"):
                if old.get(key) != config_record[key]:
                    raise VfmbenchError(
                        f"{self.run_dir} holds a run with another configuration or dataset "
                        f"({first_difference(old.get(key), config_record[key], key)}); use another run folder")
            if result_path.exists():
                return read_train_record(self.run_dir)

        remove_stale_temporaries(self.run_dir)
        seed_everything(spec.seed)
        agent = build_agent(spec, self.dataset.spaces)  # validates before anything is written
        if not config_path.exists():
            write_json_atomic(config_path, config_record)
        agent.to(self.device)
        label = encoder_label(agent.encoder, spec.encoder_options)
        t_prep = time.time()
        data = self._prepare(agent)
        prep_seconds = time.time() - t_prep
        policy: Policy = agent.policy
        batch_size = policy.config.batch_size
        enc_params = list(agent.encoder.parameters()) if agent.encoder.trainable else []
        if cfg.compile:
            compile_trained_networks(agent, cfg.compile_mode)
        graphed = cfg.compile and cfg.compile_mode in ("reduce-overhead", "max-autotune")
        autocast_dtype = PRECISIONS[cfg.precision]
        optimizers = policy.configure_optimizers(enc_params, cfg.steps)
        start_step, evals, seconds_before = 0, [], 0.0
        rng = np.random.default_rng([spec.seed, 0])
        running: dict[str, torch.Tensor | float] = {}  # metric sums since the last log
        ckpts = list_checkpoints(self.run_dir)
        if ckpts:
            load_model_state(ckpts[-1], agent, set(agent.persistent_state_dict()))
            state = load_training_state(ckpts[-1], optimizers)
            start_step, evals = state["step"], [EvalPoint(**e) for e in state.get("evals", [])]
            rng.bit_generator.state = state["sampler"]
            running, seconds_before = state.get("running", {}), state.get("train_seconds", 0.0)
        metrics_path = self.run_dir / "metrics.jsonl"
        _truncate_metrics(metrics_path, start_step)
        metrics_file = open(metrics_path, "a")
        bar = tqdm(total=cfg.steps, initial=start_step, desc=f"train {spec.method}/{label} seed {spec.seed}",
                   unit="step", disable=not self.progress)
        t0 = time.time()

        def checkpoint(step: int) -> None:
            save_checkpoint(self.run_dir, step, agent.persistent_state_dict(), optimizers, {
                "evals": [asdict(e) for e in evals], "sampler": rng.bit_generator.state,
                "running": {k: float(v) for k, v in running.items()},
                "train_seconds": seconds_before + time.time() - t0})
            self._prune(evals)  # keep the latest and the best evaluated ones

        def is_eval_step(step: int) -> bool:
            return evaluate_fn is not None and (step == cfg.steps or bool(cfg.eval_every and step % cfg.eval_every == 0))

        def evaluate_at(step: int) -> None:
            assert evaluate_fn is not None
            agent.eval()
            result = evaluate_fn(agent, step)
            self.final_evaluation = result
            evals.append(EvalPoint(step, result.success_rate, result.mean_return))
            # readable without the checkpoints (which may be too large to copy off a machine)
            write_json_atomic(self.run_dir / "evals.json", [asdict(e) for e in evals])
            agent.train()
            checkpoint(step)  # again, with the evaluation and the random state after it

        try:
            agent.train()
            if start_step and is_eval_step(start_step) and not any(e.step == start_step for e in evals):
                evaluate_at(start_step)  # interrupted during this evaluation: its checkpoint is there, redo it
            for step in range(start_step + 1, cfg.steps + 1):
                if graphed:  # CUDA graph trees: a new training iteration (the last one's outputs may be reused)
                    torch.compiler.cudagraph_mark_step_begin()
                with torch.autocast(self.device.type, dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
                    batch = self._batch(agent, data, rng, batch_size)
                    metrics = policy.update(batch, optimizers, step)
                for k, v in metrics.items():
                    # summed on the device (no wait for the GPU here), in float32: bf16 sums stall
                    running[k] = running.get(k, 0.0) + (v.float() if isinstance(v, torch.Tensor) else v)
                do_eval = is_eval_step(step)
                do_log = step % cfg.log_every == 0 or step == cfg.steps
                if do_log or do_eval or step % cfg.checkpoint_every == 0:
                    # read back (and check) before anything is written: no checkpoint after a non-finite loss
                    n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every  # since the last log
                    means = {k: float(v) / n for k, v in running.items()}
                    bad = {k: v for k, v in means.items() if not math.isfinite(v)}
                    if bad:
                        last = list_checkpoints(self.run_dir)
                        raise TrainingDivergedError(
                            f"training diverged at or before step {step} (the mean over the last {n} steps): "
                            f"{', '.join(f'{k} = {v}' for k, v in bad.items())}. The run folder keeps "
                            f"{'the checkpoint of step ' + last[-1].name.split('_')[1].lstrip('0') if last else 'no checkpoint'}"
                            f"; lower method_config.lr (now {policy.config.lr}) and train into a new folder")
                if do_log:
                    record = {"step": step, **means, "time": seconds_before + time.time() - t0}
                    metrics_file.write(json.dumps(record, allow_nan=False) + "\n")
                    metrics_file.flush()
                    bar.set_postfix({k: f"{v:.4f}" for k, v in list(means.items())[:2]})
                    running = {}
                bar.update(1)
                if do_eval or step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoint(step)  # the trained weights are safe before any evaluation
                if do_eval:
                    evaluate_at(step)
        finally:
            bar.close()
            metrics_file.close()
        best = sorted((e.success_rate for e in evals), reverse=True)[: cfg.best_k]
        record = TrainRecord(
            schema=TRAIN_SCHEMA,
            encoder_label=label,
            pretrained=bool(agent.encoder.pretrained),
            goal_conditioned=policy.dims.goal_conditioned,
            steps=cfg.steps,
            batch_size=batch_size,
            augment=cfg.augment if agent.encoder.trainable else "cached",
            evals=evals,
            best_k=cfg.best_k,
            best_k_mean_success=float(np.mean(best)) if best else None,
            train_seconds=round(seconds_before + time.time() - t0, 2),
            prepare_seconds=round(prep_seconds, 2),
            device=str(self.device),
            precision=cfg.precision,
            compiled=cfg.compile,
        )
        write_json_atomic(result_path, asdict(record))
        return record

    def _prune(self, evals: list[EvalPoint]) -> None:
        ckpts = list_checkpoints(self.run_dir)
        keep = {ckpts[-1]} if ckpts else set()
        best_steps = {e.step for e in sorted(evals, key=lambda e: -e.success_rate)[: self.spec.train.best_k]}
        keep |= {c for c in ckpts if int(c.name.split("_")[1]) in best_steps}
        prune_checkpoints(self.run_dir, keep)


def _with_train_defaults(spec: Any) -> Any:
    """A recorded spec with the `TrainConfig` keys added since it was written set to their
    defaults, so that runs recorded before a key existed still resume."""
    if not isinstance(spec, dict) or not isinstance(spec.get("train"), dict):
        return spec
    defaults = json.loads(json.dumps(asdict(TrainConfig())))
    return {**spec, "train": {**{k: v for k, v in defaults.items() if k not in spec["train"]}, **spec["train"]}}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after `step` (the checkpoint a run resumes from), so none repeats."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a row cut off by a crash
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in keep))
    os.replace(tmp, path)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's ``config.json``: its spec, dataset, task description and task config."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise VfmbenchError(f"{run_dir} is not a training run (no config.json)")
    try:
        config = read_json(path)
    except (OSError, ValueError) as exc:
        raise VfmbenchError(f"{path} is unreadable ({exc}); the run folder is damaged: train into a new one") from None
    from vfmbench.rl.loop import SCHEMA as RL_SCHEMA

    if isinstance(config, dict) and config.get("schema") == RL_SCHEMA:
        raise VfmbenchError(f"{run_dir} is an online RL run (vfmbench rl train); evaluate it with "
                            f"vfmbench rl evaluate --run {run_dir}")
    if not isinstance(config, dict) or not {"spec", "task", "task_config"} <= set(config):
        raise VfmbenchError(f"{path} is not a vfmbench run config (it lacks spec, task or task_config)")
    return config


def read_train_record(run_dir: str | Path, unfinished: bool = False, step: int | None = None,
                      warn: bool = True) -> TrainRecord:
    """The `TrainRecord` of a finished run (its ``result.json``). With `unfinished`, a run whose
    training has not finished (stopped early, or still running: checkpoints but no ``result.json``)
    gets a record of its latest checkpoint instead (`steps` = that checkpoint's step; its
    evaluations and training time so far) and, with `warn`, a warning naming the checkpoint the
    caller evaluates (`step`, None: the latest); a run without checkpoints raises `VfmbenchError`."""
    path = Path(run_dir) / "result.json"
    if path.exists():
        return from_dict(TrainRecord, read_json(path), source=str(path))
    ckpts = list_checkpoints(Path(run_dir)) if unfinished else []
    if not ckpts:
        raise VfmbenchError(f"{run_dir} has not finished training (no result.json)"
                            + (" and has no checkpoint yet" if unfinished else "") + "; rerun its train command")
    state = read_json(ckpts[-1] / "state.json")
    agent, config = load_agent(run_dir)
    spec = from_dict(RunSpec, _with_train_defaults(config["spec"]), source=str(Path(run_dir) / "config.json"))
    evals = [EvalPoint(**e) for e in state.get("evals", [])]
    best = sorted((e.success_rate for e in evals), reverse=True)[: spec.train.best_k]
    if warn:
        log.warning("%s: training has not finished (no result.json: it stopped early or is still running); its "
                    "latest checkpoint is at step %d of %d; evaluating step %d. Rerun its train command to finish it",
                    run_dir, state["step"], spec.train.steps, state["step"] if step is None else step)
    return TrainRecord(
        schema=TRAIN_SCHEMA, encoder_label=encoder_label(agent.encoder, spec.encoder_options),
        pretrained=bool(agent.encoder.pretrained), goal_conditioned=agent.policy.dims.goal_conditioned,
        steps=int(state["step"]), batch_size=agent.policy.config.batch_size,
        augment=spec.train.augment if agent.encoder.trainable else "cached", evals=evals, best_k=spec.train.best_k,
        best_k_mean_success=float(np.mean(best)) if best else None,
        train_seconds=round(float(state.get("train_seconds", 0.0)), 2), prepare_seconds=0.0,
        device=spec.train.device, precision=spec.train.precision, compiled=spec.train.compile)


def load_agent(run_dir: str | Path, step: int | None = None, device: str = "cpu",
               act_options: dict[str, Any] | None = None) -> tuple[Agent, dict[str, Any]]:
    """Rebuild the agent of a run from its config and a checkpoint (the latest by default), on
    `device` ("auto": the GPU when there is one), in eval mode; returns it and ``config.json``.
    `act_options`: method_config keys that change only how the policy acts (its `act_options`,
    e.g. Diffusion Policy's ``action_horizon`` and ``inference_steps``), set for this agent only.
    Raises `VfmbenchError` for a run without that checkpoint (naming the steps it has) and
    `ConfigError` for an act option the method does not have or a value out of range."""
    run_dir = Path(run_dir)
    record = read_run_config(run_dir)
    spec = from_dict(RunSpec, record["spec"], source=str(run_dir / "config.json"))
    if act_options:
        allowed = get_method_spec(spec.method).policy_cls.act_options
        unknown = sorted(set(act_options) - set(allowed))
        if unknown:
            raise ConfigError(f"method {spec.method!r} has no act option {', '.join(map(repr, unknown))}; its act "
                              f"options: {', '.join(allowed) or 'none'} (the rest of method_config is fixed by training)")
        spec = dataclasses.replace(spec, method_config={**spec.method_config, **act_options})
    try:
        agent = build_agent(spec, TaskSpaces.from_description(record["task"], source=str(run_dir / "config.json")))
    except ConfigError as exc:
        if not act_options:
            raise
        raise ConfigError(f"act options {act_options}: {exc}") from None
    from vfmbench.training.frozen_run import check_step

    check_step(run_dir, step)  # names the steps the run has
    ckpts = list_checkpoints(run_dir)
    if step is not None:
        ckpts = [c for c in ckpts if int(c.name.split("_")[1]) == step]
    if not ckpts:
        raise VfmbenchError(f"{run_dir} has no checkpoint")
    load_model_state(ckpts[-1], agent, set(agent.persistent_state_dict()))
    agent.act_options = dict(act_options or {})
    return agent.to(resolve_device(device)).eval(), record
