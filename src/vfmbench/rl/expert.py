"""Expert datasets from trained online RL agents, for tasks without a scripted expert.

`collect_with_agent` rolls out a run's agent (typically a state-based one: ``--encoder state``)
with its deterministic mean action and writes the episodes with the dataset writer of
`vfmbench.data` in the format of ``vfmbench collect`` (pixels, state, proprioception, actions,
optional masks; one commit per episode, resumable), so offline learners train on DMControl or
Adroit as on any collected dataset. Observations are rendered under `task_config` (default: the
run's task config without its masking wrapper), whatever the agent reads.
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vfmbench.data.collection import record_episode
from vfmbench.data.episodes import EpisodeDataset, EpisodeWriter
from vfmbench.rl.build import StackingPolicy
from vfmbench.rl.loop import load_rl_agent, read_rl_record
from vfmbench.tasks import TaskConfig, make_task
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError


def collect_with_agent(run_dir: str | Path, episodes: int, out: str | Path, seed: int = 0,
                       task_config: TaskConfig | None = None, action_noise: float = 0.0, device: str = "auto",
                       progress: bool = True) -> EpisodeDataset:
    """Write `episodes` episodes of the run's agent to `out` (seeds ``seed, seed+1, ...``, below
    the evaluation seeds). `action_noise`: DART-style Gaussian noise on the executed action (the
    recorded action is the agent's clean one). Rerunning resumes; more episodes extend it.
    Raises `ConfigError` for bad counts and `VfmbenchError` for a run without a checkpoint."""
    import vfmbench

    if episodes < 1 or seed < 0 or action_noise < 0:
        raise ConfigError(f"episodes must be at least 1, seed and action_noise 0 or more; got {episodes}, {seed}, "
                          f"{action_noise}")
    agent, fmt, spec, doc = load_rl_agent(run_dir, device)
    if task_config is None:
        recorded = from_dict(TaskConfig, doc["task_config"], source=f"{run_dir}/config.json task_config")
        masking = {"gt_mask", "samg"} if spec.mask else set()
        task_config = dataclasses.replace(recorded, wrappers=[w for w in recorded.wrappers if w.name not in masking])
    try:
        train = read_rl_record(run_dir)
        expert = {"run": str(Path(run_dir).resolve()), "frames": train.frames,
                  "eval_return": train.last_eval.mean if train.last_eval else None}
    except Exception:  # noqa: BLE001 - a run stopped before its first record still has a checkpoint
        expert = {"run": str(Path(run_dir).resolve()), "frames": None, "eval_return": None}
    policy = StackingPolicy(agent, fmt)
    with make_task(spec.task, task_config) as task:
        header = {"task": task.describe(), "task_config": asdict(task_config), "expert": {"kind": "rl_agent", **expert},
                  "seed": seed, "keep_failures": True, "action_noise": action_noise,
                  "versions": {"vfmbench": vfmbench.__version__, "numpy": np.__version__,
                               "python": platform.python_version()}}
        writer = EpisodeWriter(Path(out), header)
        bar = tqdm(total=episodes, initial=min(writer.num_episodes, episodes), desc=f"collect {spec.task} (agent)",
                   unit="ep", disable=not progress)
        while writer.num_episodes < episodes:
            ep_seed = seed + writer.num_episodes
            policy.reset(1)
            frames, _, success, ret = record_episode(task, ep_seed, lambda obs: policy.act({fmt.key: obs[fmt.key][None]})[0],
                                                     action_noise)
            writer.append(frames, {}, {"seed": ep_seed, "success": success, "return": round(ret, 3)})
            bar.update(1)
        bar.close()
        returns = [e.get("return", 0.0) for e in writer.manifest["episodes"]]
        return writer.finalize({"attempts": writer.num_episodes, "mean_return": float(np.mean(returns)),
                                "expert_success_rate": float(np.mean([e["success"] for e in writer.manifest["episodes"]]))})
