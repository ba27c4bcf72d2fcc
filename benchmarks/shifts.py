"""Cost of robustness shifts and ground-truth masks: milliseconds per environment step
(physics + render) under each shift, and per `Task.mask` call. Prints JSON.

    MUJOCO_GL=egl python benchmarks/shifts.py [--task fetch_push] [--resolution 84] [--steps 100]

Timings depend on the machine and on what else runs on it; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from vfmbench.tasks import make_task
from vfmbench.tasks.shifts import list_shifts


def measure(task: str, shift: str, resolution: int, steps: int) -> dict[str, float]:
    """Median milliseconds of a step (with its frame), a mask, and a step with the mask in the observation."""
    out = {}
    for masks in (False, True):
        with make_task(task, resolution=resolution, shift=shift, masks=masks) as t:
            t.reset(0)
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                t.step(np.zeros(t.action_dim))
                times.append(time.perf_counter() - t0)
            out["step_with_mask_ms" if masks else "step_ms"] = 1e3 * float(np.median(times))
            if not masks:
                mask_times = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    t.mask()
                    mask_times.append(time.perf_counter() - t0)
                out["mask_ms"] = 1e3 * float(np.median(mask_times))
    return {k: round(v, 2) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="fetch_push")
    p.add_argument("--resolution", type=int, default=84)
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    rows = {s: measure(args.task, s, args.resolution, args.steps) for s in list_shifts()}
    print(json.dumps({"task": args.task, "resolution": args.resolution, "steps": args.steps,
                      "machine": platform.processor() or platform.machine(), "shifts": rows}, indent=2))


if __name__ == "__main__":
    main()
