"""Cost of an Adroit agent step (2 environment steps + one frame) per task: milliseconds, with
and without the ground-truth mask in the observation, and of the physics alone. Prints JSON.

    MUJOCO_GL=egl python benchmarks/adroit_step.py [--resolution 84] [--steps 50]

Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from vfmbench.tasks import make_task

TASKS = ("adroit_door", "adroit_hammer", "adroit_pen")


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(times)), 2)


def measure(name: str, resolution: int, steps: int) -> dict[str, float]:
    """Median milliseconds of `Task.step` (frame only, frame + mask) and of the 2 physics steps."""
    out = {}
    rng = np.random.default_rng(0)
    for masks in (False, True):
        with make_task(name, resolution=resolution, masks=masks) as task:
            task.reset(0)
            key = "step_mask_ms" if masks else "step_ms"
            out[key] = _median_ms(lambda: task.step(rng.uniform(-1, 1, task.action_dim)), steps)
            if not masks:
                out["physics_ms"] = _median_ms(lambda: [task.env_step(rng.uniform(-1, 1, task.action_dim))
                                                        for _ in range(task.action_repeat)], steps)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=84)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args()
    result = {name: measure(name, args.resolution, args.steps) for name in TASKS}
    print(json.dumps({"resolution": args.resolution, "steps": args.steps, "cpus": os.cpu_count(),
                      "machine": platform.machine(), "mujoco_gl": os.environ.get("MUJOCO_GL"),
                      "ms_per_agent_step": result}, indent=2))


if __name__ == "__main__":
    main()
