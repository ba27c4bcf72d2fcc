"""`vfmbench robustness --run RUN [--shifts none,distractor,...] [--episodes N] [--json]`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="evaluate a run under several shifts; report the drop against the clean task",
                       description="Roll out a run's checkpoint on the same held-out seeds under the clean task "
                                   "and each shift; print success and its paired drop (± standard error).")
    p.add_argument("--run", required=True, help="run folder written by vfmbench train or demo")
    p.add_argument("--shifts", default="distractor,color_easy,color_hard,video_easy,video_hard",
                   help="comma-separated shifts (vfmbench shifts list); none is always evaluated")
    p.add_argument("--shift-set", dest="shift_set", action="append", default=[], metavar="SHIFT.KEY=VALUE",
                   help="a shift option, e.g. --shift-set distractor.count=3 (repeatable)")
    p.add_argument("--episodes", type=positive_int, default=50, help="held-out episodes (default 50)")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--envs", type=positive_int, default=10, help="environments stepped in lockstep (default 10)")
    p.add_argument("--out", help="also write the report as JSON to this file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    from vfmbench.masking.wiring import add_mask_args

    add_mask_args(p)  # evaluate through this mask instead of the run's own
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from vfmbench.cli._common import print_json, print_table, writable_file
    from vfmbench.cli.shifts import shift_options
    from vfmbench.evaluation.robustness import RobustnessReport
    from vfmbench.experiments.job import EvalSpec, job_for_run, run_job
    from vfmbench.utils.errors import ConfigError
    from vfmbench.utils.io import write_json_atomic

    writable_file(args.out)
    options = shift_options(args.shift_set)
    for name, value in options.items():
        if not isinstance(value, dict):
            raise ConfigError(f"--shift-set {name}={value!r}: write SHIFT.KEY=VALUE, e.g. distractor.count=3")
    shifts = [s.strip() for s in args.shifts.split(",") if s.strip()]
    eval_spec = EvalSpec(episodes=args.episodes, envs=args.envs, step=args.step, robustness=shifts,
                         robustness_options=options)
    if args.mask:
        from vfmbench.masking.wiring import evaluate_masked

        clean, results = evaluate_masked(args.run, args.mask, args.mask_reference, episodes=args.episodes,
                                         envs=args.envs, step=args.step, robustness=shifts,
                                         robustness_options=options, progress=not args.no_progress)
        report = RobustnessReport(job_for_run(args.run).run.task, clean.seeds, results)
    else:
        record = run_job(job_for_run(args.run, eval_spec, progress=not args.no_progress))
        assert record.evaluation is not None
        report = RobustnessReport(record.task, record.evaluation.seeds, record.robustness)
    doc = {"run": str(args.run), **({"mask": args.mask} if args.mask else {}), **asdict(report)}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(args.out), doc)
    if args.json:
        print_json(doc)
    else:
        print(f"{args.run}: {report.task}" + (f" (mask {args.mask})" if args.mask else "") + ", "
              f"{args.episodes} episodes per shift (same seeds); drop = clean - shifted")
        print_table(report.rows(), ["shift", "success", "any_step", "drop", "episodes", "seconds"])
    return 0
