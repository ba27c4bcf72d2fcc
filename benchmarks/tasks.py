"""Cost of one agent step per task: milliseconds of `Task.step` with its frame (physics of every
repeated environment step + one render), with the ground-truth mask in the observation too,
without any frame (`render_pixels` off: what an agent that reads only the state pays), and of a
render alone. Random actions from the task's reset state. Prints JSON.

    MUJOCO_GL=egl python benchmarks/tasks.py [--tasks dmc_walker_walk,adroit_door] [--resolution 84] [--steps 50]

Timings depend on the machine and on what else runs on it; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from vfmbench.tasks import TASKS, make_task


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(times)), 2)


def measure(name: str, resolution: int, steps: int) -> dict[str, float]:
    """Median milliseconds of a step, a step with its mask, a step without a frame, and a render,
    over `steps` calls each."""
    out: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for masks, pixels, key in ((False, True, "step_ms"), (True, True, "step_mask_ms"), (False, False, "step_state_only_ms")):
        with make_task(name, resolution=resolution, masks=masks) as task:
            task.render_pixels = pixels
            task.reset(0)
            left = [task.max_episode_steps - 1]

            def step() -> None:
                if left[0] == 0:
                    task.reset(int(rng.integers(1 << 30)))
                    left[0] = task.max_episode_steps - 1
                task.step(rng.uniform(-1, 1, task.action_dim))
                left[0] -= 1

            out[key] = _median_ms(step, steps)
            if key == "step_ms":
                out["render_ms"] = _median_ms(task.render, steps)
                out["action_repeat"] = getattr(task, "action_repeat", 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="", help="comma-separated task names (default: every registered task)")
    p.add_argument("--resolution", type=int, default=84)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args()
    names = [t for t in args.tasks.split(",") if t] or TASKS.names()
    result = {}
    for name in names:
        try:
            result[name] = measure(name, args.resolution, args.steps)
        except Exception as exc:  # one task that cannot run here is reported, not fatal
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(name, result[name], flush=True, file=sys.stderr)
    print(json.dumps({"resolution": args.resolution, "steps": args.steps, "cpus": os.cpu_count(),
                      "machine": platform.machine(), "processor": platform.processor(),
                      "mujoco_gl": os.environ.get("MUJOCO_GL"), "ms_per_agent_step": result}, indent=2))


if __name__ == "__main__":
    main()
