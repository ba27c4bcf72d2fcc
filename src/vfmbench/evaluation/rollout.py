"""Vectorised rollouts: `n_envs` task instances step in lockstep and the agent acts on all of
them in one batched forward pass. Evaluation seeds start at `EVAL_SEED_BASE`, far from the
collection seeds (0, 1, 2, ...), so evaluation episodes are held out."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vfmbench.tasks import Task, TaskConfig, make_task
from vfmbench.tasks.wrappers import reset_all, step_all
from vfmbench.agents import Agent
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError

EVAL_SEED_BASE = 1_000_000


@dataclass
class EvalResult:
    """Outcome of `evaluate`: per-episode success and return on the seeds it used."""

    success_rate: float  # success at the final step (the standard Fetch metric)
    success_any_rate: float  # success at any step
    episodes: int
    seeds: list[int]
    successes: list[bool]
    seconds: float
    returns: list[float] = field(default_factory=list)  # sum of the task's rewards per episode
    shift: str = "none"
    shift_options: dict[str, Any] = field(default_factory=dict)
    video: str | None = None
    act_options: dict[str, Any] = field(default_factory=dict)  # the policy's acting options set for this evaluation

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.inference_mode()
def evaluate(
    agent: Agent,
    task: str,
    task_config: TaskConfig | dict[str, Any] | None = None,
    episodes: int = 20,
    seed: int = EVAL_SEED_BASE,
    n_envs: int = 10,
    video: str | Path | None = None,
    progress: bool = True,
    envs: list[Task] | None = None,
    shift: str | None = None,
    shift_options: dict[str, Any] | None = None,
) -> EvalResult:
    """Roll out `agent` for `episodes` episodes with seeds ``seed, seed+1, ...``, `n_envs`
    task instances in lockstep, the agent acting on all of them in one batched call on the
    device its parameters are on; observation wrappers shared by all environments (SAM-G's
    ``samg``) process the batch's frames at once (`reset_all` / `step_all`).

    `video` writes a GIF of the first batch (up to 4 environments side by side). Pass `envs`
    to reuse task instances across calls (they must match `task`/`task_config`). `shift` (with
    `shift_options`) evaluates under a robustness shift instead of `task_config.shift`.
    """
    if episodes < 1 or n_envs < 1:
        raise ConfigError(f"evaluation needs at least 1 episode and 1 environment, got {episodes} and {n_envs}")
    agent = agent.eval()
    if isinstance(task_config, TaskConfig):
        cfg = task_config
    else:
        cfg = from_dict(TaskConfig, task_config, source=f"task {task!r} config")
    if shift is not None:
        cfg = dataclasses.replace(cfg, shift=shift, shift_options=dict(shift_options or {}))
        cfg.validate()
    own_envs = envs is None
    n = max(1, min(n_envs, episodes))
    if envs is None:
        envs = [make_task(task, cfg) for _ in range(n)]
    elif (envs[0].config.shift, envs[0].config.shift_options) != (cfg.shift, cfg.shift_options):
        raise ConfigError(
            f"the envs passed to evaluate run shift {envs[0].config.shift!r} but {cfg.shift!r} was asked for; "
            "pass envs made with that shift or none"
        )
    keys = agent.observation_keys
    for env in envs:  # an agent that reads no pixels needs no frames rendered (a wrapper renders anyway)
        env.render_pixels = video is not None or any(k.endswith("pixels") for k in keys)
    seeds = [seed + i for i in range(episodes)]
    successes: list[bool] = []
    any_successes: list[bool] = []
    returns: list[float] = []
    frames: list[np.ndarray] = []
    t0 = time.time()
    label = task if cfg.shift == "none" else f"{task} [{cfg.shift}]"
    bar = tqdm(total=episodes, desc=f"evaluate {label}", unit="ep", disable=not progress)
    try:
        for start in range(0, episodes, len(envs)):
            batch_seeds = seeds[start : start + len(envs)]
            active = envs[: len(batch_seeds)]
            obs = reset_all(active, batch_seeds)
            b = len(active)
            agent.reset(b, batch_seeds)
            done_any = np.zeros(b, bool)
            last = np.zeros(b, bool)
            total = np.zeros(b)
            record = video is not None and start == 0
            for _ in range(active[0].max_episode_steps):
                if record:
                    frames.append(np.concatenate([o["pixels"] for o in obs[:4]], axis=1))
                actions = agent.act({k: np.stack([o[k] for o in obs]) for k in keys})
                steps = step_all(active, actions)
                obs = [s.observation for s in steps]
                last = np.array([s.success for s in steps])
                total += [s.reward for s in steps]
                done_any |= last
                if all(s.done for s in steps):
                    break
            if record:
                frames.append(np.concatenate([o["pixels"] for o in obs[:4]], axis=1))
            successes += last.tolist()
            any_successes += done_any.tolist()
            returns += total.tolist()
            bar.update(b)
    finally:
        bar.close()
        if own_envs:
            for env in envs:
                env.close()
    video_path = None
    if video is not None and frames:
        import imageio.v2 as imageio

        video_path = str(video)
        Path(video_path).parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(video_path, frames, duration=80, loop=0)  # ms per frame
    return EvalResult(
        success_rate=float(np.mean(successes)),
        success_any_rate=float(np.mean(any_successes)),
        episodes=episodes,
        seeds=seeds,
        successes=[bool(s) for s in successes],
        seconds=time.time() - t0,
        returns=returns,
        shift=cfg.shift,
        shift_options=dict(cfg.shift_options),
        video=video_path,
        act_options=dict(agent.act_options),
    )
