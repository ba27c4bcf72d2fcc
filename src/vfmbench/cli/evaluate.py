"""`vfmbench evaluate --run RUN [--episodes N] [--video FILE.gif] [--shift S [--shift-set K=V]]`."""

from __future__ import annotations

import argparse

from vfmbench.cli.shifts import add_shift_args, shift_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="roll out a trained run on held-out seeds",
                       description="Load a run's latest (or --step) checkpoint and report its success rate.")
    p.add_argument("--run", required=True, help="run folder written by vfmbench train or demo")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--envs", type=int, default=10, help="environments stepped in lockstep")
    p.add_argument("--video", help="write a GIF of the first episodes to this file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    add_shift_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json
    from vfmbench.evaluation import evaluate
    from vfmbench.tasks import TaskConfig
    from vfmbench.training import load_agent
    from vfmbench.utils.config import from_dict

    agent, record = load_agent(args.run, args.step)
    task = record["spec"]["task"]
    task_cfg = from_dict(TaskConfig, run_task_config(record), "run task_config")
    res = evaluate(agent, task, task_cfg, episodes=args.episodes, n_envs=args.envs, video=args.video,
                   progress=not args.no_progress, shift=args.shift, shift_options=shift_options(args.shift_set))
    if args.json:
        print_json(res.to_dict())
    else:
        shown = task if res.extra["shift"] == "none" else f"{task} under {res.extra['shift']}"
        print(f"{shown}: success {res.success_rate:.2f} over {res.episodes} episodes "
              f"(any-step success {res.success_any_rate:.2f}, {res.seconds:.0f} s)"
              + (f"; video {res.video}" if res.video else ""))
    return 0


def run_task_config(record: dict) -> dict:
    """TaskConfig fields of the task a run was trained on: its dataset's, as the run recorded them."""
    return record["task_config"]
