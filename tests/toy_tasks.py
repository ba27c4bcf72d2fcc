"""A toy task for learning tests that need no renderer: a point reaching a goal in the plane.

`register_point_reach()` adds it to the task registry (once) so that jobs, which build their own
environments with `make_task`, can run on it too.
"""

from typing import Any

import numpy as np

from vfmbench.data.episodes import EpisodeWriter
from vfmbench.evaluation import EvalResult
from vfmbench.tasks import TASKS, TaskSpec
from vfmbench.tasks.base import StepResult, Task, TaskConfig


class PointReach(Task):
    """A point in the unit square moves 0.1 x action per step towards a goal; 20 steps."""

    name = "point_reach"
    action_dim, state_dim, proprio_dim, max_episode_steps = 2, 4, 0, 20

    def __init__(self, goal_conditioned: bool = False, config: TaskConfig | None = None):
        self.config = config or TaskConfig(goal_conditioned=goal_conditioned)

    def _obs(self) -> dict[str, np.ndarray]:
        obs = {"state": np.r_[self.p, self.g].astype(np.float32), "proprio": np.zeros(0, np.float32)}
        if self.config.goal_conditioned:
            obs["goal_state"] = np.r_[self.g, self.g].astype(np.float32)
        return obs

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        self.p, self.g, self.t = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2), 0
        return self._obs()

    def step(self, action: np.ndarray) -> StepResult:
        self.p = self.p + 0.1 * np.clip(action, -1, 1)
        self.t += 1
        d = float(np.linalg.norm(self.p - self.g))
        return StepResult(self._obs(), -d, d < 0.05, self.t >= self.max_episode_steps)

    def expert_action(self) -> np.ndarray:
        return np.clip((self.g - self.p) / 0.1, -1, 1).astype(np.float32)

    def render(self) -> np.ndarray:
        return np.zeros((8, 8, 3), np.uint8)

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "state_dim": 4, "proprio_dim": 0, "action_dim": 2,
                "goal_conditioned": self.config.goal_conditioned}


def collect_point_reach(root, episodes, goal_conditioned=False):
    env = PointReach(goal_conditioned)
    w = EpisodeWriter(root, {"task": env.describe(), "task_config": {"goal_conditioned": goal_conditioned}})
    for seed in range(episodes):
        obs = env.reset(seed)
        frames: dict[str, list] = {"state": [], "actions": [], "proprio": []}
        for _ in range(env.max_episode_steps):
            a = env.expert_action()
            frames["state"].append(obs["state"])
            frames["actions"].append(a)
            frames["proprio"].append(obs["proprio"])
            obs = env.step(a).observation
        per_episode = {"goal_state": obs["goal_state"]} if goal_conditioned else {}
        w.append({k: np.stack(v) for k, v in frames.items()}, per_episode, {"seed": seed})
    return w.finalize()


def register_point_reach() -> None:
    """Make ``point_reach`` buildable by `make_task` (idempotent)."""
    if "point_reach" not in TASKS:
        TASKS.register(TaskSpec("point_reach", "toy", "a point reaching a goal (tests)",
                                lambda cfg: PointReach(config=cfg), action_dim=2, max_episode_steps=20,
                                default_proprio=False))


def scored(rate: float) -> EvalResult:
    """A stand-in evaluation result with success `rate`, for trainer tests that need no rollouts."""
    return EvalResult(success_rate=rate, success_any_rate=rate, episodes=1, seeds=[0], successes=[rate > 0.5],
                      seconds=0.0, returns=[0.0])
