"""`vfmbench report --runs FILTER... --out DIR [--analyses DIR...]`: a static HTML page (and markdown)."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="an HTML report (tables, plots, analyses) from runs in the index",
                       description="Render the done jobs the filters select (mean ± std, 95% CI and training "
                                   "budget per row, success and robustness plots) and analysis records into "
                                   "DIR/index.html and DIR/report.md. See docs/sweeps.md.",
                       epilog=example("vfmbench report --runs sweep=example --out report --analyses analysis"))
    p.add_argument("--runs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="filters: status, sweep, task, encoder, method, mask, kind (values comma-separated), "
                        "e.g. --runs sweep=demo encoder=state,e2e_cnn (default: every run)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--analyses", nargs="*", default=[], metavar="DIR",
                   help="folders searched (recursively) for analysis records to include (default: none)")
    p.add_argument("--title", default="vfmbench report", help="the page's title")
    p.add_argument("--index", metavar="SQLITE", help="the runs index (default: $VFMBENCH_HOME/runs.sqlite)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from vfmbench.analysis.records import find_records
    from vfmbench.experiments.index import CorruptRowError, RunsIndex, parse_filters
    from vfmbench.reports.html import ReportInput, build_report
    from vfmbench.reports.tables import unique_runs
    from vfmbench.utils.errors import ConfigError

    filters = parse_filters(args.runs)
    with RunsIndex(args.index, create=False) as index:
        rows = index.rows(**filters)
    analyses = []
    for folder in args.analyses:
        if not Path(folder).is_dir():
            raise ConfigError(f"--analyses {folder}: not a folder")
        analyses += find_records(folder)
    if not rows and not analyses:
        raise ConfigError(f"no runs match {' '.join(args.runs) or '(no filter)'} in {index.path} and no analysis "
                          "records were given; `vfmbench runs list` shows what the index holds")
    notes: list[str] = []
    done = []  # (row, record), oldest finished first, so that a newer record of the same run wins
    for r in sorted((r for r in rows if r.status == "done"), key=lambda r: (r.finished or 0.0, r.id)):
        try:
            done.append((r, r.record()))
        except CorruptRowError as exc:
            print(f"warning: {exc}; left out of the report", file=sys.stderr)
            notes.append(f"{exc}; left out of the report.")
    offline = [rec for r, rec in done if r.kind == "offline"]
    kept, dropped = unique_runs(offline)
    if dropped:
        ids = [str(r.id) for r, rec in done if r.kind == "offline" and any(rec is d for d in dropped)]
        msg = (f"{len(dropped)} done row(s) record a run already counted (the same run folder, or the same task, "
               f"encoder, method, seed and budget), so only the newest record of each run is used; left out: "
               f"index rows {', '.join(ids)}")
        print(f"warning: {msg}", file=sys.stderr)
        notes.append(msg + ".")
    inp = ReportInput(
        title=args.title, filters=" ".join(args.runs),
        runs=kept,
        rl_runs=[rec for r, rec in done if r.kind == "rl"],
        problems=[(r.sweep, r.key, r.display_status(), (r.error or "").splitlines()[0] if r.error else "")
                  for r in rows if r.status != "done"],
        analyses=analyses, notes=notes,
    )
    out = build_report(inp, args.out)
    print(f"report: {out.html}  markdown: {out.markdown}  ({len(inp.runs) + len(inp.rl_runs)} runs, "
          f"{len(analyses)} analysis record(s), {len(out.figures)} figure(s))")
    return 0
