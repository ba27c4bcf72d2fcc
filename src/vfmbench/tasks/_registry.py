"""Task registry: names map to factories; `make_task("fetch_push", resolution=128)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from vfmbench.tasks.base import Task, TaskConfig
from vfmbench.utils.config import from_dict
from vfmbench.utils.errors import unknown_name


@dataclass(frozen=True)
class TaskSpec:
    name: str
    family: str
    description: str
    factory: Callable[[TaskConfig], Task]
    action_dim: int
    max_episode_steps: int
    default_proprio: bool
    supports_goal: bool = True


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    if spec.name in _TASKS:
        raise ValueError(f"task {spec.name!r} registered twice")
    _TASKS[spec.name] = spec
    return spec


def list_tasks() -> list[str]:
    """Names of all registered tasks."""
    return sorted(_TASKS)


def get_task_spec(name: str) -> TaskSpec:
    if name not in _TASKS:
        raise unknown_name("task", name, list(_TASKS))
    return _TASKS[name]


def make_task(name: str, config: TaskConfig | dict[str, Any] | None = None, **overrides: Any) -> Task:
    """Create task `name`; `config` and keyword overrides are TaskConfig fields."""
    spec = get_task_spec(name)
    if isinstance(config, TaskConfig):
        data = {k: getattr(config, k) for k in TaskConfig.__dataclass_fields__}
    else:
        data = dict(config or {})
    data.update(overrides)
    cfg = from_dict(TaskConfig, data, source=f"task {name!r} config")
    return spec.factory(cfg)
