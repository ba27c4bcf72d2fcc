"""Collect expert episodes from a task into a dataset folder (resumable)."""

from __future__ import annotations

import multiprocessing
import os
import platform
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from vfmbench.data.episodes import MANIFEST, EpisodeDataset, EpisodeWriter
from vfmbench.tasks import TaskConfig, get_task_spec, make_task
from vfmbench.utils.errors import ConfigError, DatasetError, NoExpertError


@dataclass
class CollectConfig:
    """What to collect. Episode i of the attempt sequence uses seed ``seed + i``.

    ``task_config.masks = True`` also stores ground-truth masks (``masks``, ``goal_masks``).
    """

    task: str = "fetch_reach"
    episodes: int = 100
    seed: int = 0
    keep_failures: bool = False  # keep expert episodes that did not succeed
    # DART-style noise (Laskey et al. 2017): the executed action is the expert's plus Gaussian
    # noise of this standard deviation, the recorded action is the expert's clean one, so the
    # data shows how to recover from small deviations.
    action_noise: float = 0.0
    task_config: TaskConfig = field(default_factory=TaskConfig)

    def __post_init__(self) -> None:
        if isinstance(self.task_config, dict):  # convenience for Python callers
            from vfmbench.utils.config import from_dict

            self.task_config = from_dict(TaskConfig, self.task_config, source="task_config")

    def validate(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"episodes must be at least 1, got {self.episodes}")
        if self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer (episode i uses seed + i), got {self.seed}")
        if self.action_noise < 0:
            raise ConfigError(f"action_noise must be non-negative, got {self.action_noise}")
        self.task_config.validate()


def collect(config: CollectConfig, out: str | Path, progress: bool = True, workers: int = 1) -> EpisodeDataset:
    """Run the task's scripted expert and write `config.episodes` episodes to `out`.

    Each finished episode is committed at once, so an interrupted collect leaves a readable
    dataset of the finished ones; running the same call again resumes it, and asking for more
    episodes than a finished dataset holds extends it. The settings are checked before anything
    is created on disk; file paths in them (a video shift's sources) are stored absolute.
    `workers` > 1 runs the episodes in that many processes (each with its own task instance; the
    dataset is the same as with one: episodes are written in seed order).
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    import vfmbench

    config.validate()
    spec = get_task_spec(config.task)
    if not spec.expert:
        raise NoExpertError(f"{config.task} has no scripted expert to collect with; {spec.expert_hint}")
    out = Path(out)
    task_config = absolute_paths(config.task_config)
    with make_task(config.task, task_config) as task:
        header = {
            "task": task.describe(),
            "task_config": asdict(task_config),
            "expert": "scripted",
            "seed": config.seed,
            "keep_failures": config.keep_failures,
            "action_noise": config.action_noise,
            "versions": {
                "vfmbench": vfmbench.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        }
        writer = EpisodeWriter(out, header)
        done = writer.num_episodes
        if done >= config.episodes:
            if not writer.manifest.get("complete"):
                return writer.finalize({"attempts": writer.manifest.get("attempts", done)})
            return EpisodeDataset(out)
        attempts = int(writer.manifest.get("attempts", 0))
        max_attempts = 2 * config.episodes + 10
        bar = tqdm(total=config.episodes, initial=done, desc=f"collect {config.task}", unit="ep", disable=not progress)
        episodes = _expert_episodes(config.task, task_config, task, config.seed + attempts, config.action_noise, workers)
        try:
            while writer.num_episodes < config.episodes:
                if attempts >= max_attempts:
                    raise DatasetError(
                        f"the {config.task} expert succeeded in only {writer.num_episodes} of {attempts} episodes; "
                        f"check the task configuration (or pass keep_failures) — {out} keeps what was collected"
                    )
                seed, (frames, per_episode, success) = next(episodes)
                attempts += 1
                writer.manifest["attempts"] = attempts
                if success or config.keep_failures:
                    writer.append(frames, per_episode, {"seed": seed, "success": success})
                    bar.update(1)
        finally:
            episodes.close()
            bar.close()
        successes = sum(e["success"] for e in writer.manifest["episodes"])
        return writer.finalize({"attempts": attempts, "expert_success_rate": successes / attempts})


def absolute_paths(task_config: TaskConfig) -> TaskConfig:
    """`task_config` with the file paths of its shift's and wrappers' options made absolute, so a
    dataset's recorded config opens the same files from any working folder.

    Option classes that hold paths say so with a ``resolve_paths(options) -> options`` static
    method (`VideoOptions` does)."""
    from vfmbench.tasks.shifts import get_shift_spec
    from vfmbench.tasks.wrappers import WRAPPERS

    resolve = getattr(get_shift_spec(task_config.shift).options_cls, "resolve_paths", None)
    shift_options = resolve(dict(task_config.shift_options)) if resolve else dict(task_config.shift_options)
    wrappers = []
    for wrapper in task_config.wrappers:
        resolve = getattr(WRAPPERS.get(wrapper.name).options_cls, "resolve_paths", None)
        wrappers.append(replace(wrapper, options=resolve(dict(wrapper.options)) if resolve else dict(wrapper.options)))
    return replace(task_config, shift_options=shift_options, wrappers=wrappers)


Episode = tuple[dict[str, np.ndarray], dict[str, np.ndarray], bool]  # frames, per-episode arrays, success


def _run_expert_episode(task, seed: int, noise: float = 0.0) -> Episode:
    frames, per_episode, success, _ = record_episode(task, seed, lambda obs: task.expert_action(), noise)
    return frames, per_episode, success


def _expert_episodes(name: str, task_config: TaskConfig, task: Any, first_seed: int, noise: float,
                     workers: int) -> Iterator[tuple[int, Episode]]:
    """The expert's episodes of seeds ``first_seed, first_seed + 1, ...``, in that order: run by
    `task` here, or with `workers` > 1 by that many spawned processes, a few seeds ahead."""
    if workers == 1:
        seed = first_seed
        while True:
            yield seed, _run_expert_episode(task, seed, noise)
            seed += 1
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(os.getpid(), name, task_config))
    pending: deque[tuple[int, Future]] = deque()
    seed = first_seed
    try:
        while True:
            while len(pending) < 2 * workers:
                pending.append((seed, pool.submit(_worker_episode, seed, noise)))
                seed += 1
            done_seed, future = pending.popleft()
            yield done_seed, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER_TASK: list[Any] = []  # a collection worker's own task instance


def _start_worker(parent: int, name: str, task_config: TaskConfig) -> None:
    from vfmbench.utils.io import exit_with_parent

    exit_with_parent(parent)  # no orphan workers when collect is killed
    _WORKER_TASK.append(make_task(name, task_config))


def _worker_episode(seed: int, noise: float) -> Episode:
    return _run_expert_episode(_WORKER_TASK[0], seed, noise)


def record_episode(task, seed: int, act, noise: float = 0.0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], bool, float]:
    """One episode of `task` from `seed` acting with ``act(observation) -> action [A]``, recorded in the
    arrays of a dataset (pixels, state, proprio, masks when present, actions). With `noise` > 0 the
    executed action gets Gaussian noise of that std (DART) while the clean action is recorded.
    Returns (frames ``{name: [T, ...]}``, per-episode goal arrays, success at the last step, return)."""
    obs = task.reset(seed)
    rng = np.random.default_rng([seed, 7])
    # observation key -> array name; masks are present when the task config asks for them
    keys = {k: k for k in ("pixels", "state", "proprio")}
    if "mask" in obs:
        keys["mask"] = "masks"
    frames: dict[str, list[np.ndarray]] = {k: [] for k in (*keys.values(), "actions")}
    per_episode = {}
    if "goal_pixels" in obs:
        per_episode = {"goal_pixels": obs["goal_pixels"], "goal_state": obs["goal_state"]}
        if "goal_mask" in obs:
            per_episode["goal_masks"] = obs["goal_mask"]
    success, total = False, 0.0
    for _ in range(task.max_episode_steps):
        action = np.asarray(act(obs), np.float32)
        for k, name in keys.items():
            frames[name].append(obs[k])
        frames["actions"].append(action)
        executed = action + rng.normal(0.0, noise, size=action.shape) if noise > 0 else action
        step = task.step(np.clip(executed, -1.0, 1.0))
        obs, success = step.observation, step.success
        total += step.reward
        if step.done:
            break
    return {k: np.stack(v) for k, v in frames.items()}, per_episode, success, total


def open_dataset(path: str | Path) -> EpisodeDataset:
    """Open a dataset folder with a clear error if it is not one."""
    path = Path(path)
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    return EpisodeDataset(path)
