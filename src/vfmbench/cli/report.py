"""`vfmbench report --runs FILTER... --out DIR [--analyses DIR...]`: a static HTML page (and markdown)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="an HTML report (tables, plots, analyses) from runs in the index",
                       description="Render the done jobs the filters select (mean ± std, 95% CI and training "
                                   "budget per row, success and robustness plots) and analysis records into "
                                   "DIR/index.html and DIR/report.md. See docs/sweeps.md.")
    p.add_argument("--runs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="filters: status, sweep, task, encoder, method, mask, kind (values comma-separated), "
                        "e.g. --runs sweep=demo encoder=state,e2e_cnn (default: every run)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--analyses", nargs="*", default=[], metavar="DIR",
                   help="folders searched (recursively) for analysis records to include")
    p.add_argument("--title", default="vfmbench report")
    p.add_argument("--index", metavar="SQLITE", help="the runs index (default: $VFMBENCH_HOME/runs.sqlite)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vfmbench.analysis.records import find_records
    from vfmbench.experiments.index import RunsIndex, parse_filters
    from vfmbench.reports.html import ReportInput, build_report
    from vfmbench.utils.errors import ConfigError

    filters = parse_filters(args.runs)
    with RunsIndex(args.index) as index:
        rows = index.rows(**filters)
    analyses = []
    for folder in args.analyses:
        if not Path(folder).is_dir():
            raise ConfigError(f"--analyses {folder}: not a folder")
        analyses += find_records(folder)
    if not rows and not analyses:
        raise ConfigError(f"no runs match {' '.join(args.runs) or '(no filter)'} in {index.path} and no analysis "
                          "records were given; `vfmbench runs list` shows what the index holds")
    done = [r for r in rows if r.status == "done"]
    inp = ReportInput(
        title=args.title, filters=" ".join(args.runs),
        runs=[r.record() for r in done if r.kind == "offline"],
        rl_runs=[r.record() for r in done if r.kind == "rl"],
        problems=[(r.key, r.status, (r.error or "").splitlines()[0] if r.error else "") for r in rows
                  if r.status != "done"],
        analyses=analyses,
    )
    out = build_report(inp, args.out)
    print(f"report: {out.html}  markdown: {out.markdown}  ({len(inp.runs) + len(inp.rl_runs)} runs, "
          f"{len(analyses)} analysis record(s), {len(out.figures)} figure(s))")
    return 0
