"""Sweep throughput: jobs per hour of the same small grid with 1, 2 and 4 Ray workers.

    MUJOCO_GL=egl python benchmarks/sweeps.py --workers 1 2 4 --seeds 4

Each worker count runs the example grid (`examples/grid.yaml`, shifts dropped, smaller budgets)
into its own folder and index; the dataset is collected once beforehand and shared. Jobs per hour
= jobs / (last job's end - first job's start), from the index's timings (Ray start-up and the
data check excluded). Each worker is given one CPU (`--cpus-per-job 1`) and one torch thread.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--seeds", type=int, default=4, help="seeds per encoder (jobs = 2 x seeds)")
    p.add_argument("--executor", default="ray", choices=["ray", "pool"])
    p.add_argument("--grid", default=str(Path(__file__).resolve().parent.parent / "examples" / "grid.yaml"))
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from vfmbench.experiments.executors import make_executor, run_sweep
    from vfmbench.experiments.grid import load_grid
    from vfmbench.experiments.index import RunsIndex

    overrides = ["axes.shifts=[]", f"axes.seeds={list(range(args.seeds))}", "train.steps=100",
                 "trainable.steps=30", "eval.episodes=4", "eval.envs=4", "train.eval_episodes=0"]
    out: dict = {"host": platform.node(), "cpus": os.cpu_count(), "executor": args.executor,
                 "grid": "examples/grid.yaml with " + " ".join(overrides), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        shared_data = None
        for workers in args.workers:
            folder = Path(tmp) / f"w{workers}"
            if shared_data is not None:  # the same expert episodes for every worker count
                shutil.copytree(shared_data, folder / "data")
            grid = load_grid(args.grid, overrides + [f"name=scaling_w{workers}"])
            index = RunsIndex(folder / "runs.sqlite")
            executor = make_executor(args.executor, workers=workers)
            t0 = time.time()
            try:
                run_sweep(grid, folder, index, executor, progress=False, log=lambda *a: None)
            finally:
                executor.close()
            wall = time.time() - t0
            rows = index.rows(status="done")
            span = max(r.finished for r in rows) - min(r.started for r in rows)
            out["runs"].append({"workers": workers, "jobs": len(rows), "span_seconds": round(span, 1),
                                "jobs_per_hour": round(3600 * len(rows) / span, 1),
                                "mean_job_seconds": round(sum(r.seconds for r in rows) / len(rows), 1),
                                "command_seconds": round(wall, 1)})
            shared_data = shared_data or folder / "data"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
