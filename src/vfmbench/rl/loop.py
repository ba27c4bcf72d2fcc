"""The online training loop: act, step, store, update; evaluate, checkpoint, resume.

A run folder holds ``config.json`` (the `RLRunSpec`, the task's description and task config),
``checkpoints/step_NNNNNNN/`` (named by frame: safetensors + JSON, `vfmbench.training.checkpoint`),
``replay/`` (the replay buffer's chunks, `ReplayBuffer.save`) and ``result.json`` (the
`RLTrainRecord`). Checkpoints are taken at episode ends, so the buffer holds whole episodes and no
environment state needs saving: rerunning the same command resumes from the latest checkpoint
with its buffer, its optimisers, its torch RNG and its frame count, and trains on to ``frames``.
If the buffer cannot be restored the run continues with an empty one, says so, records what was
lost (``replay_lost``) and refills it for ``seed_frames`` frames (acting with its policy) before
updating again.

Speed: the environment step (physics and rendering) runs in a worker thread while the main thread
runs the update on the agent's device, and the worker also draws the next replay batch; update
metrics stay on the device until a progress-bar refresh. Evaluation steps `eval_envs` environments
in lockstep with one batched forward pass.
"""

from __future__ import annotations

import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vfmbench.evaluation.rollout import EVAL_SEED_BASE, evaluate
from vfmbench.rl.agent import ActorCritic, metrics_to_floats
from vfmbench.rl.build import ObsFormat, StackingPolicy, build_agent, obs_format, resolve_device, run_task_config
from vfmbench.rl.config import RLRunSpec, replay_bytes
from vfmbench.rl.replay import ReplayBuffer
from vfmbench.tasks import Task, TaskConfig, make_task
from vfmbench.training.checkpoint import (list_checkpoints, load_model_state, load_training_state,
                                          prune_checkpoints, remove_stale_temporaries, save_checkpoint)
from vfmbench.utils.config import first_difference, from_dict
from vfmbench.utils.errors import ConfigError, TrainingDivergedError, VfmbenchError
from vfmbench.utils.io import read_json, write_json_atomic

SCHEMA = "vfmbench.rl_run/1"
TRAIN_SEED_BASE = 10_000_000  # training episode e of run seed s uses TRAIN_SEED_BASE + 100_000 s + e
# spec fields that may change between sessions of one run
_RESUMABLE = ("frames", "device", "eval_envs")
log = logging.getLogger(__name__)


@dataclass
class ReturnStat:
    """Returns of evaluation episodes at one point of training (frame count, mean, std)."""

    frame: int
    mean: float
    std: float
    episodes: int
    returns: list[float] = field(default_factory=list)


@dataclass
class RLTrainRecord:
    """What training reports (``result.json``): where it stands, how fast it went, what it reached.

    ``wall_seconds`` adds up every session of the run; ``frames_per_second`` is the latest
    session's; ``complete`` says whether ``frames`` reached the spec's target; ``replay_lost``
    lists resumptions that could not restore the replay buffer (frame, transitions, reason).
    """

    task: str
    agent: str
    encoder: str
    encoder_label: str
    pretrained: bool
    mask: str | None
    seed: int
    frames: int
    target_frames: int
    steps: int
    episodes: int
    updates: int
    wall_seconds: float
    frames_per_second: float
    device: str
    complete: bool
    evals: list[ReturnStat] = field(default_factory=list)
    train_returns: list[float] = field(default_factory=list)  # the last 20 training episodes
    replay_lost: list[dict[str, Any]] = field(default_factory=list)
    sessions: int = 1
    mask_options: dict[str, Any] = field(default_factory=dict)  # the mask wrapper's options (e.g. dilate)

    @property
    def last_eval(self) -> ReturnStat | None:
        return self.evals[-1] if self.evals else None


def write_run_config(out: Path, spec: RLRunSpec, task: Task, task_config: TaskConfig, label: str, pretrained: bool) -> None:
    """Write or check ``config.json``: a folder holding another run is refused with the difference."""
    doc = {"schema": SCHEMA, "spec": asdict(spec), "task": task.describe(), "task_config": asdict(task_config),
           "encoder_label": label, "pretrained": pretrained}
    path = out / "config.json"
    if path.exists():
        try:
            old = read_json(path)
        except (OSError, ValueError) as exc:
            raise VfmbenchError(f"{exc}; {out} cannot be resumed: use another --out folder") from None
        a = {k: v for k, v in old.get("spec", {}).items() if k not in _RESUMABLE}
        b = {k: v for k, v in doc["spec"].items() if k not in _RESUMABLE}
        if a != b:
            raise ConfigError(f"{out} holds another run ({first_difference(a, b) or 'different settings'}); "
                              "use another --out folder, or the same settings to resume it")
    write_json_atomic(path, doc)


def read_rl_config(run_dir: str | Path) -> tuple[RLRunSpec, dict[str, Any]]:
    """The `RLRunSpec` and ``config.json`` of a run folder; `VfmbenchError` if it is not one."""
    path = Path(run_dir) / "config.json"
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        raise VfmbenchError(f"{path} is missing or unreadable ({exc}); is {run_dir} a run of vfmbench rl train?") from None
    if doc.get("schema") != SCHEMA:
        raise VfmbenchError(f"{path} is not an online RL run (schema {doc.get('schema')!r}, expected {SCHEMA})")
    return from_dict(RLRunSpec, doc["spec"], source=str(path)), doc


def load_rl_agent(run_dir: str | Path, device: str = "auto", step: int | None = None) -> tuple[ActorCritic, ObsFormat, RLRunSpec, dict[str, Any]]:
    """The agent of a run's latest checkpoint (or checkpoint `step`, a frame count), in evaluation
    mode on `device`, its observation format, spec and config.json. Strict loading: a checkpoint
    that does not fit the run's model is a `VfmbenchError`."""
    spec, doc = read_rl_config(run_dir)
    spaces = _spaces(doc)
    ckpts = list_checkpoints(Path(run_dir))
    if step is not None:
        ckpts = [c for c in ckpts if c.name == f"step_{step:07d}"]
    if not ckpts:
        raise VfmbenchError(f"{run_dir} has no checkpoint{'' if step is None else f' at frame {step}'}; "
                            "train it first (vfmbench rl train ... --out RUN)")
    agent, _, _ = build_agent(spec, spaces, resolve_device(device))
    load_model_state(ckpts[-1], agent, set(agent.persistent_state_dict()))
    return agent.eval(), obs_format(spec, spaces), spec, doc


def _spaces(doc: dict[str, Any]):
    from vfmbench.tasks import TaskSpaces

    return TaskSpaces.from_description(doc["task"], source="config.json task")


class RLTrainer:
    """Trains one `RLRunSpec` into `out` (see the module docstring).

    `max_seconds`: stop at the first episode end after this much wall time (checkpointing there),
    so a long run can be split into sessions; SIGTERM and SIGINT stop the same way. `evaluate_fn`
    replaces the periodic evaluation (tests); `progress` shows a tqdm bar (frames/s, returns).
    """

    def __init__(self, spec: RLRunSpec, out: str | Path, progress: bool = True, max_seconds: float | None = None):
        spec.validate()
        self.spec, self.out, self.progress, self.max_seconds = spec, Path(out), progress, max_seconds
        self._stop_signal = False

    # -- set-up -----------------------------------------------------------------------------------
    def _setup(self, pool: ThreadPoolExecutor) -> None:
        spec = self.spec
        self.device = resolve_device(spec.device)
        self.task_config = run_task_config(spec)
        # the training environment lives in the worker thread: a renderer's GL context is bound
        # to the thread that made it current
        self.env = pool.submit(make_task, spec.task, self.task_config).result()
        self.spaces = self.env.spaces
        self.fmt = obs_format(spec, self.spaces)
        self.env.render_pixels = self.fmt.key == "pixels"  # a state agent's steps render nothing
        self.agent, self.label, self.pretrained = build_agent(spec, self.spaces, self.device)
        c = spec.agent_config
        need = replay_bytes(c.replay_capacity, self.fmt.shape if self.fmt.key == "pixels" else (0,),
                            self.fmt.shape[0] if self.fmt.key == "state" else 0, self.spaces.action_dim)
        total = _physical_memory()
        if total and need > 0.9 * total:
            raise ConfigError(f"agent_config.replay_capacity {c.replay_capacity} needs up to {need / 2**30:.1f} GiB, "
                              f"more than this machine's {total / 2**30:.1f} GiB; lower it "
                              "(--set agent_config.replay_capacity=N)")
        self.buffer = ReplayBuffer(c.replay_capacity, self.fmt.shape, self.spaces.action_dim,
                                   frame_stack=self.fmt.frames, nstep=c.nstep, discount=c.discount)
        self.out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.out)
        pool.submit(write_run_config, self.out, spec, self.env, self.task_config, self.label, self.pretrained).result()

    def _resume(self) -> dict[str, Any]:
        """Restore the latest checkpoint and its replay buffer; the loop's counters."""
        state = {"frame": 0, "step": 0, "episodes": 0, "updates": 0, "wall": 0.0, "evals": [], "returns": [],
                 "replay_lost": [], "sessions": 0, "refill_until": 0, "rng": None}
        ckpts = list_checkpoints(self.out)
        if not ckpts:
            return state
        ckpt = ckpts[-1]
        load_model_state(ckpt, self.agent, set(self.agent.persistent_state_dict()))
        saved = load_training_state(ckpt, self.agent.optimizers)
        state.update({k: saved[k] for k in state if k in saved})
        try:
            self.buffer.load(self.out / "replay", saved["replay_total"], saved["replay_episodes"])
        except VfmbenchError as exc:
            lost = {"frame": saved["frame"], "slots": min(saved["replay_total"], self.buffer.capacity),
                    "reason": str(exc)}
            log.warning("%s: the replay buffer could not be restored (%s); resuming from frame %d with an empty "
                        "buffer (%d observations lost), refilled for %d frames before updating again",
                        self.out, exc, saved["frame"], lost["slots"], self.spec.agent_config.seed_frames)
            state["replay_lost"] = [*state["replay_lost"], lost]
            state["refill_until"] = saved["frame"] + self.spec.agent_config.seed_frames
            self.buffer = ReplayBuffer(self.buffer.capacity, self.buffer.obs_shape, self.buffer.action_dim,
                                       frame_stack=self.buffer.frame_stack, nstep=self.buffer.nstep,
                                       discount=self.buffer.discount)
        return state

    def _checkpoint(self, s: dict[str, Any]) -> None:
        ckpts = list_checkpoints(self.out)
        oldest_kept = ckpts[-1] if ckpts else None  # the previous checkpoint stays until this one is written
        keep_from = read_json(oldest_kept / "state.json")["replay_total"] if oldest_kept else self.buffer.total
        total = self.buffer.save(self.out / "replay", keep_from=keep_from)
        extra = {k: v for k, v in s.items() if k != "rng"}
        extra.update(replay_total=total, replay_episodes=self.buffer.episodes, rng=self.rng.bit_generator.state,
                     evals=[asdict(e) if isinstance(e, ReturnStat) else e for e in s["evals"]])
        final = save_checkpoint(self.out, s["frame"], self.agent.persistent_state_dict(), self.agent.optimizers, extra)
        prune_checkpoints(self.out, {final} | ({oldest_kept} if oldest_kept else set()))

    # -- evaluation -------------------------------------------------------------------------------
    def _evaluate(self, frame: int) -> ReturnStat:
        spec = self.spec
        policy = StackingPolicy(self.agent, self.fmt)
        try:
            result = evaluate(policy, spec.task, self.task_config, episodes=spec.eval_episodes, seed=EVAL_SEED_BASE,
                              n_envs=spec.eval_envs, progress=False, envs=self._eval_envs)
        finally:
            self.agent.train(True)
        r = np.asarray(result.returns)
        return ReturnStat(frame, round(float(r.mean()), 2), round(float(r.std()), 2), len(r),
                          [round(float(x), 2) for x in r])

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> RLTrainRecord:
        """Train to ``spec.frames`` (or until stopped); returns the record also written to result.json."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="vfmbench-env")
        try:
            self._setup(pool)
        except BaseException:
            if getattr(self, "env", None) is not None:
                pool.submit(self.env.close).result()
            pool.shutdown()
            raise
        spec = self.spec
        s = self._resume()
        s["sessions"] += 1
        self.rng = np.random.default_rng([spec.seed, s["frame"]])
        if s.get("rng"):
            self.rng.bit_generator.state = s["rng"]
        if s["frame"] == 0:  # a resumed run continues with the torch RNG of its checkpoint
            torch.manual_seed(spec.seed)
        repeat = int(getattr(self.env, "action_repeat", 1) or 1)
        self._eval_envs = [make_task(spec.task, self.task_config) for _ in range(max(1, min(spec.eval_envs, spec.eval_episodes)))] \
            if spec.eval_episodes else []
        next_eval = (s["frame"] // spec.eval_every_frames + 1) * spec.eval_every_frames if spec.eval_every_frames else None
        next_ckpt = (s["frame"] // spec.checkpoint_every_frames + 1) * spec.checkpoint_every_frames
        t_start, frame_start = time.time(), s["frame"]
        wall0 = s["wall"]
        old_handlers = self._install_signal_handlers()
        bar = tqdm(total=spec.frames, initial=min(s["frame"], spec.frames), unit="frame", disable=not self.progress,
                   desc=f"rl {spec.agent} {spec.task}", smoothing=0.05)
        metrics: dict[str, Any] = {}
        self._batch = None
        try:
            while s["frame"] < spec.frames:
                ep_return = self._episode(s, pool, bar, metrics, repeat)
                s["returns"] = [*s["returns"], round(ep_return, 2)][-20:]
                s["wall"] = wall0 + time.time() - t_start
                if next_eval is not None and (s["frame"] >= next_eval or s["frame"] >= spec.frames):
                    s["evals"] = [*s["evals"], asdict(self._evaluate(s["frame"]))]
                    next_eval = (s["frame"] // spec.eval_every_frames + 1) * spec.eval_every_frames
                    self._write_record(s, t_start, frame_start)
                out_of_time = self.max_seconds is not None and time.time() - t_start >= self.max_seconds
                if s["frame"] >= next_ckpt or s["frame"] >= spec.frames or out_of_time or self._stop_signal:
                    s["wall"] = wall0 + time.time() - t_start
                    self._checkpoint(s)
                    next_ckpt = (s["frame"] // spec.checkpoint_every_frames + 1) * spec.checkpoint_every_frames
                if out_of_time or self._stop_signal:
                    break
        finally:
            pool.submit(self.env.close).result()
            pool.shutdown(wait=True)
            bar.close()
            self._restore_signal_handlers(old_handlers)
            for env in self._eval_envs:
                env.close()
        s["wall"] = wall0 + time.time() - t_start
        return self._write_record(s, t_start, frame_start)

    def _episode(self, s: dict[str, Any], pool: ThreadPoolExecutor, bar: tqdm, metrics: dict[str, Any],
                 repeat: int) -> float:
        """One training episode (run to its end, so checkpoints hold whole episodes); its return."""
        spec, c, agent, buf = self.spec, self.spec.agent_config, self.agent, self.buffer
        seed = TRAIN_SEED_BASE + 100_000 * spec.seed + s["episodes"]
        obs = pool.submit(self.env.reset, seed).result()[self.fmt.key]
        buf.start_episode(obs)
        stack = [obs] * self.fmt.frames
        total = 0.0
        while True:
            frame, step = s["frame"], s["step"]
            learn_from = max(c.seed_frames, s["refill_until"])
            if frame < c.explore_frames and not s["replay_lost"]:
                action = self.rng.uniform(-1.0, 1.0, self.spaces.action_dim).astype(np.float32)
            else:
                x = np.concatenate(stack, axis=-1) if self.fmt.frames > 1 else stack[-1]
                action = agent.act(x[None], step, explore=True)[0]
            update_now = frame >= learn_from and step % c.update_every == 0 and buf.has_transitions
            update_next = frame + repeat >= learn_from and (step + 1) % c.update_every == 0
            fut = pool.submit(self._step_and_sample, action, update_next)
            if update_now:
                batch = self._batch if self._batch is not None else buf.sample(c.batch_size, self.rng)
                metrics.update(agent.update(batch, step))
                s["updates"] += 1
            result, self._batch = fut.result()
            next_obs = result.observation[self.fmt.key]
            terminal = bool(result.info.get("terminal", False))
            buf.add(action, result.reward, terminal, next_obs)
            stack = [*stack[1:], next_obs]
            total += result.reward
            s["step"] += 1
            s["frame"] += repeat
            bar.update(repeat)
            if s["step"] % 250 == 0 and metrics:
                m = metrics_to_floats(metrics)
                if not np.isfinite(m["critic_loss"]):
                    raise TrainingDivergedError(f"{self.out}: the critic loss became {m['critic_loss']} at frame "
                                                f"{s['frame']}; lower agent_config.lr")
                bar.set_postfix(ret=s["returns"][-1] if s["returns"] else None, q=m["q"], closs=m["critic_loss"],
                                refresh=False)
            if result.done or terminal:
                s["episodes"] += 1
                return total

    def _step_and_sample(self, action: np.ndarray, sample: bool):
        """Runs in the worker thread while the main thread updates: the environment step, then (if
        the next step updates) the next replay batch, drawn before this transition is added."""
        result = self.env.step(action)
        batch = self.buffer.sample(self.spec.agent_config.batch_size, self.rng) \
            if sample and self.buffer.has_transitions else None
        return result, batch

    def _write_record(self, s: dict[str, Any], t_start: float, frame_start: int) -> RLTrainRecord:
        spec = self.spec
        elapsed = max(time.time() - t_start, 1e-9)
        record = RLTrainRecord(
            task=spec.task, agent=spec.agent, encoder=spec.encoder_name, encoder_label=self.label,
            pretrained=self.pretrained, mask=spec.mask, seed=spec.seed, frames=s["frame"], target_frames=spec.frames,
            steps=s["step"], episodes=s["episodes"], updates=s["updates"], wall_seconds=round(s["wall"], 1),
            frames_per_second=round((s["frame"] - frame_start) / elapsed, 1), device=str(self.device),
            complete=s["frame"] >= spec.frames,
            evals=[e if isinstance(e, ReturnStat) else from_dict(ReturnStat, e, "evals") for e in s["evals"]],
            train_returns=list(s["returns"]), replay_lost=list(s["replay_lost"]), sessions=s["sessions"],
            mask_options=dict(spec.mask_options))
        write_json_atomic(self.out / "result.json", asdict(record))
        return record

    def _install_signal_handlers(self) -> dict[int, Any]:
        def stop(signum: int, frame: Any) -> None:  # noqa: ARG001
            if self._stop_signal:  # a second signal: stop now
                raise KeyboardInterrupt
            self._stop_signal = True
            log.warning("stopping at the end of this episode (checkpointing); signal again to stop at once")

        old = {}
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                old[sig] = signal.signal(sig, stop)
        except ValueError:  # not the main thread: no handlers
            return {}
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def read_rl_record(run_dir: str | Path) -> RLTrainRecord:
    path = Path(run_dir) / "result.json"
    try:
        return from_dict(RLTrainRecord, read_json(path), source=str(path))
    except (OSError, ValueError) as exc:
        raise VfmbenchError(f"{path} is missing or unreadable ({exc}); train the run first") from None


def _physical_memory() -> int:
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


