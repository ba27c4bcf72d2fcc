"""Task registry: names map to factories; `make_task("fetch_push", resolution=128)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from vfmbench.registry import Registry
from vfmbench.tasks.base import Task, TaskConfig
from vfmbench.tasks.wrappers import apply_wrappers
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import ConfigError


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: how to build it and what it offers (shown by ``vfmbench tasks list``).

    ``max_episode_steps`` counts agent steps (one per action, after any action repeat);
    ``reward`` says what the environment's reward is ("sparse", "dense" or "sparse|dense" where
    ``TaskConfig.reward`` picks); ``success`` whether `StepResult.success` is defined (False:
    always False, judge by return); ``expert`` whether `Task.expert_action` has a scripted expert;
    ``mask_groups`` the ground-truth mask groups, the default ones first; ``shifts`` the shifts
    the task renders (None: every registered shift).
    """

    name: str
    family: str
    description: str
    factory: Callable[[TaskConfig], Task]
    action_dim: int
    max_episode_steps: int
    default_proprio: bool
    supports_goal: bool = True
    reward: str = "sparse"
    success: bool = True
    expert: bool = True
    expert_hint: str = ""  # where expert data comes from when there is no scripted expert
    mask_groups: tuple[str, ...] = ()
    shifts: tuple[str, ...] | None = None
    shift_note: str = ""  # why some shifts do not apply


TASKS: Registry[TaskSpec] = Registry("task")
register_task = TASKS.register
list_tasks = TASKS.names
get_task_spec = TASKS.get


def make_task(name: str, config: TaskConfig | dict[str, Any] | None = None, **overrides: Any) -> Task:
    """Create task `name` with the observation wrappers its config names: the one function that
    builds tasks (collection, evaluation, robustness, the demo and the CLI all call it).

    `config` and keyword overrides are TaskConfig fields; unknown keys, bad values and unknown
    task or wrapper names raise `ConfigError` / `UnknownNameError`.
    """
    spec = get_task_spec(name)
    if isinstance(config, TaskConfig):
        data = {k: getattr(config, k) for k in TaskConfig.__dataclass_fields__}
    else:
        data = dict(config or {})
    data.update(overrides)
    cfg = from_dict(TaskConfig, data, source=f"task {name!r} config")
    if spec.shifts is not None and cfg.shift not in spec.shifts:
        raise ConfigError(f"shift {cfg.shift!r} does not apply to {name}: {spec.shift_note or 'not supported'}; "
                          f"its shifts: {', '.join(spec.shifts)}")
    task = spec.factory(cfg)
    try:
        return apply_wrappers(task, cfg.wrappers)
    except BaseException:
        task.close()
        raise
