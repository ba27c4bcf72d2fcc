"""`vfmbench demo [--quick] [--out DIR] [--config YAML] [--set KEY=VALUE] [--executor E]`: the ``demo``
sweep grid (docs/sweeps.md), with its own config keys and output (results.json, report.md, success.png)."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import add_config_args, config_dict, example, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="collect, train and evaluate several encoders on a Fetch task; print a table",
                       description="Collect expert data, train every encoder over several seeds, evaluate on "
                                   "held-out seeds; write results.json, report.md and success.png (and, with "
                                   "--set shifts=[...], robustness.png) to --out, by default the folder "
                                   "vfmbench-demo in the current directory. Rerunning the same command resumes. "
                                   "Config keys: docs/sweeps.md, \"The demo's config keys\".",
                       epilog=example("vfmbench demo --quick --set shifts=[distractor] --out vfmbench-demo"))
    p.add_argument("--out", default="vfmbench-demo", help="output folder, relative to the current directory")
    p.add_argument("--quick", action="store_true",
                   help="a smaller run: one seed, 40 episodes, 1000 steps (1200 for jointly trained encoders)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--executor", choices=["inprocess", "pool", "ray"], default="pool",
                   help="where its jobs run: worker processes on this machine (pool), this process (inprocess: "
                        "slower on several cores, but shows each job's progress bars) or Ray (vfmbench sweep --help)")
    p.add_argument("--workers", type=positive_int,
                   help="pool: how many jobs at once, each with its share of the CPU cores (default: one per "
                        "CPU core, at most 4); ray: CPUs of the local cluster (default: all cores)")
    p.add_argument("--index", metavar="SQLITE", help="the runs index (default: $VFMBENCH_HOME/runs.sqlite)")
    add_config_args(p, "seeds=[0,1]", "docs/sweeps.md")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from vfmbench.experiments.demo import demo_config_from, quick_config, run_demo
    from vfmbench.experiments.executors import make_executor
    from vfmbench.experiments.index import RunsIndex
    from vfmbench.reports import DROP, format_robustness, format_table

    torch.set_num_threads(max(1, torch.get_num_threads()))
    data, source = config_dict(args)
    config = demo_config_from(data, source)
    if args.quick:
        config = quick_config(config)
    with RunsIndex(args.index) as index, make_executor(args.executor, args.workers) as executor:
        doc = run_demo(config, args.out, progress=not args.no_progress, executor=executor, index=index)
    print()
    print(format_table(doc.summary))
    if doc.robustness_summary:
        print(f"\nunder shifts: success and, in brackets, the {DROP}")
        print(format_robustness(doc.robustness_summary))
    if args.quick:
        print("\n(--quick: one seed and smaller budgets; not comparable with the default demo's figures)")
    print(f"\nresults: {args.out}/results.json  report: {args.out}/report.md  ({doc.seconds:.0f} s)")
    return 0
