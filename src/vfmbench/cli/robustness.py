"""`vfmbench robustness --run RUN [--shifts distractor,...] [--shift-set S.KEY=V] [--episodes N] [--plot FILE.png]`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example, positive_int
from vfmbench.cli.shifts import add_shift_set, shift_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="evaluate a run under several shifts; report the drop against the clean task",
                       description="Roll out a run's checkpoint on the same held-out seeds under the clean task "
                                   "and each shift; print success and its paired drop (± standard error): clean "
                                   "success minus shifted success (positive: the policy got worse). "
                                   "See docs/shifts.md.",
                       epilog=example("vfmbench robustness --run runs/reach_state --shifts distractor,video_hard "
                                      "--shift-set distractor.count=3 --episodes 50 --plot robustness.png"))
    p.add_argument("--run", required=True, help="run folder written by vfmbench train or demo")
    p.add_argument("--shifts", type=shift_names, default="distractor,color_easy,color_hard,video_easy,video_hard",
                   help="comma-separated shifts (vfmbench shifts list); none is always evaluated")
    add_shift_set(p)
    p.add_argument("--episodes", type=positive_int, default=50, help="held-out episodes per shift")
    p.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    p.add_argument("--envs", type=positive_int, default=10, help="environments stepped in lockstep")
    p.add_argument("--out", help="also write the report as JSON to this file")
    p.add_argument("--plot", metavar="FILE.png", help="also draw success under each shift to this PNG")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    from vfmbench.masking.wiring import add_mask_args

    add_mask_args(p, "the run's own mask")  # evaluate through this mask instead of the run's own
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from vfmbench.cli._common import print_json, print_table, writable_file
    from vfmbench.cli.shifts import shift_options
    from vfmbench.evaluation.robustness import RobustnessReport
    from vfmbench.experiments.job import EvalSpec, job_for_run, run_job
    from vfmbench.reports.tables import DROP, plot_robustness, run_robustness_rows
    from vfmbench.training import read_train_record
    from vfmbench.training.frozen_run import check_step
    from vfmbench.utils.imports import require
    from vfmbench.utils.io import write_json_atomic

    writable_file(args.out)
    writable_file(args.plot)
    if args.plot:
        require("matplotlib", extra="viz")  # before any rollout
    check_step(args.run, args.step, option="--step")
    options = shift_options(args.shift_set, ["none", *args.shifts])
    eval_spec = EvalSpec(episodes=args.episodes, envs=args.envs, step=args.step, robustness=args.shifts,
                         robustness_options=options)
    run = job_for_run(args.run).run
    if args.mask:
        from vfmbench.masking.wiring import evaluate_masked

        clean, results = evaluate_masked(args.run, args.mask, args.mask_reference, episodes=args.episodes,
                                         envs=args.envs, step=args.step, robustness=args.shifts,
                                         robustness_options=options, progress=not args.no_progress)
        report = RobustnessReport(run.task, clean.seeds, results)
    else:
        record = run_job(job_for_run(args.run, eval_spec, progress=not args.no_progress))
        assert record.evaluation is not None
        report = RobustnessReport(record.task, record.evaluation.seeds, record.robustness)
    train = read_train_record(args.run, unfinished=True, step=args.step, warn=bool(args.mask))  # run_job warned
    doc = {"run": str(args.run), **({"mask": args.mask} if args.mask else {}), **asdict(report)}
    if args.out:
        write_json_atomic(Path(args.out), doc)
    if args.plot:
        plot_robustness(run_robustness_rows(run.method, train, report), Path(args.plot))
    if args.json:
        print_json(doc)
    else:
        mask = f" (mask {args.mask})" if args.mask else ""
        print(f"{args.run}: {report.task}, {train.encoder_label} / {run.method}{mask}"
              f", trained {train.steps} steps, batch {train.batch_size}, {train.augment}; {args.episodes} episodes "
              f"per shift; {DROP}")
        print_table(report.rows(), ["shift", "success", "any_step", "drop", "episodes", "seconds"])
        if args.plot:
            print(f"plot: {args.plot}")
    return 0
