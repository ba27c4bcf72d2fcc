"""`vfmbench sweep [--config GRID.yaml | --preset NAME] --out DIR [--executor inprocess|pool|ray]` and
`vfmbench sweep presets`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of jobs (tasks x encoders x methods x masks x seeds) through the "
                                     "runs index; 'sweep presets' lists named grids",
                       description="Expand a grid (YAML, docs/sweeps.md) into jobs, record them in the runs index "
                                   "and run the ones not done yet with an executor. Rerunning the same command "
                                   "finishes only what is missing (jobs of a killed sweep included).",
                       epilog=example("vfmbench sweep --config examples/grid.yaml --set axes.seeds=[0,1] "
                                      "--out sweeps/example --executor pool --workers 2"))
    p.add_argument("action", nargs="?", choices=["run", "presets"], default="run",
                   help="run the grid, or presets: list the named grids and what each needs")
    p.add_argument("--config", metavar="GRID.yaml", help="the grid file (examples/grid.yaml is one)")
    p.add_argument("--preset", metavar="NAME", help="a named grid (vfmbench sweep presets)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a grid key, e.g. --set axes.seeds=[0,1] (repeatable; values are YAML)")
    p.add_argument("--out", help="sweep folder: data/, runs/<job>/, grid.json (required to run)")
    p.add_argument("--executor", choices=["inprocess", "pool", "ray"], default="inprocess",
                   help="where jobs run: this process, local worker processes, or Ray")
    p.add_argument("--workers", type=positive_int,
                   help="pool: worker processes (default: one per CPU core, at most 4); ray: CPUs of the local "
                        "cluster (default: all cores)")
    p.add_argument("--address", help="ray: join this cluster (auto, or ray://HOST:10001) instead of starting one")
    p.add_argument("--cpus-per-job", type=float, default=1.0, help="ray: CPUs each job requests")
    p.add_argument("--gpus-per-job", type=float, default=1.0,
                   help="ray: GPUs each CUDA job requests (fractions share a GPU)")
    p.add_argument("--retry-failed", action="store_true", help="run failed jobs again (done jobs never rerun)")
    p.add_argument("--index", metavar="SQLITE", help="the runs index (default: $VFMBENCH_HOME/runs.sqlite)")
    p.add_argument("--json", action="store_true", help="presets: print JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _presets(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json, print_table
    from vfmbench.experiments.grid import GRID_PRESETS, count_jobs

    rows = []
    for preset in GRID_PRESETS:
        grid = preset.grid()
        req = grid.requires
        rows.append({"name": preset.name, "kind": grid.kind, "jobs": count_jobs(grid),
                     "gpu": "yes" if req.gpu else "no", "hours": req.hours, "needs": req.note,
                     "description": preset.description})
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["name", "kind", "jobs", "gpu", "hours", "needs", "description"])
    return 0


def _run(args: argparse.Namespace) -> int:
    from vfmbench.utils.errors import ConfigError

    if args.action == "presets":
        return _presets(args)
    if args.config is not None and args.preset is not None:
        raise ConfigError("--config and --preset are exclusive: give one grid, either --config GRID.yaml or "
                          "--preset NAME (add changes to either with --set KEY=VALUE)")
    if args.config is None and args.preset is None:
        raise ConfigError("give the grid: --config GRID.yaml or --preset NAME (vfmbench sweep presets lists them)")
    if args.out is None:
        raise ConfigError("give the sweep folder: --out DIR")
    from vfmbench.experiments.executors import make_executor, run_sweep
    from vfmbench.experiments.grid import GRID_PRESETS, check_available, load_grid
    from vfmbench.experiments.index import RunsIndex

    grid = (load_grid(args.config, args.overrides) if args.config
            else GRID_PRESETS.get(args.preset).grid(args.overrides))
    check_available(grid)  # before an executor starts (a Ray cluster takes a while)
    with RunsIndex(args.index) as index, make_executor(args.executor, args.workers, args.address, args.gpus_per_job,
                                                       args.cpus_per_job) as executor:
        result = run_sweep(grid, args.out, index, executor, retry_failed=args.retry_failed,
                           progress=not args.no_progress)
        _print_result(result, index.path)
    return 0 if all(r.status == "done" for r in result.rows) else 1


def _print_result(result, index_path) -> None:
    from vfmbench.cli._common import print_table
    from vfmbench.reports import DROP, format_robustness, format_table, summarize, summarize_robustness

    records = result.records()
    if result.grid.kind == "offline" and records:
        print()
        print(format_table(summarize(records)))
        rob = summarize_robustness(records)
        if rob:
            print(f"\nunder shifts: success and, in brackets, the {DROP}")
            print(format_robustness(rob))
    elif records:
        from vfmbench.rl.job import return_table

        for shift, rows in return_table(records).items():
            print(f"\nReturn under {shift}")
            print_table(rows, list(rows[0]))
    bad = [r for r in result.rows if r.status != "done"]
    if bad:
        print("\njobs not done:")
        print_table([{"id": r.id, "job": r.key, "status": r.display_status(),
                      "error": (r.error or "").splitlines()[0] if r.error else "-"} for r in bad],
                    ["id", "job", "status", "error"])
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items())
    print(f"\n{result.grid.name}: {counts}; ran {result.ran} job(s) in {result.seconds:.0f} s; index {index_path}\n"
          f"report: vfmbench report --runs sweep={result.grid.name} --out DIR")
