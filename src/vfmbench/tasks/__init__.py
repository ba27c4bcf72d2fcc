"""Pixel tasks with privileged state, proprioception, success and scripted experts."""

from vfmbench.tasks import fetch as _fetch  # noqa: F401  (registers the Fetch tasks)
from vfmbench.tasks import dmc as _dmc  # noqa: F401  (registers the DeepMind Control tasks)
from vfmbench.tasks import adroit as _adroit  # noqa: F401
from vfmbench.tasks import fetch_pair as _fetch_pair  # noqa: F401  (fetch_reach_red, fetch_reach_blue: the VAT pair)
from vfmbench.tasks._registry import TASKS, TaskSpec, get_task_spec, list_tasks, make_task, register_task
from vfmbench.tasks.base import CameraConfig, Observation, StepResult, Task, TaskConfig, TaskSpaces, WrapperConfig
from vfmbench.tasks.wrappers import WRAPPERS, ObservationWrapper, WrapperSpec

__all__ = [
    "WRAPPERS",
    "ObservationWrapper",
    "TaskSpaces",
    "WrapperConfig",
    "WrapperSpec",
    "TASKS",
    "CameraConfig",
    "Observation",
    "StepResult",
    "Task",
    "TaskConfig",
    "TaskSpec",
    "get_task_spec",
    "list_tasks",
    "make_task",
    "register_task",
]
from vfmbench.masking import wrapper as _samg_wrapper  # noqa: F401,E402  (registers the samg wrapper)
