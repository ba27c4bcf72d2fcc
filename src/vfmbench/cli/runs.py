"""`vfmbench runs list | show | rm`: the runs index (docs/sweeps.md)."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example

_COLUMNS = ["id", "hash", "sweep", "task", "encoder", "method", "mask", "seed", "status", "seconds", "host",
            "attempts", "finished"]


def _add_filters(p: argparse.ArgumentParser) -> None:
    for key in ("status", "sweep", "task", "encoder", "method", "mask"):
        p.add_argument(f"--{key}", action="append", metavar=key.upper(),
                       help=f"only rows with this {key} (repeatable; comma-separated values)")
    _add_index(p)


def _add_index(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", metavar="SQLITE", help="the runs index (default: $VFMBENCH_HOME/runs.sqlite)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="the runs index: list, show or remove recorded jobs",
                       description="Every sweep records its jobs in a SQLite index: status, timings, host, "
                                   "spec and record. See docs/sweeps.md.",
                       epilog=example("vfmbench runs list --sweep example --status failed"))
    runs = p.add_subparsers(dest="runs_command", metavar="COMMAND")
    runs.required = True
    ls = runs.add_parser("list", help="one line per job",
                         description="One line per recorded job (id, spec hash, sweep, task, encoder, method, mask, "
                                     "seed, status, time, host), filtered by the options.",
                         epilog=example("vfmbench runs list --sweep example --status failed,running"))
    _add_filters(ls)
    ls.add_argument("--json", action="store_true", help="print JSON (every column but spec and record)")
    ls.set_defaults(func=_list)
    show = runs.add_parser("show", help="one job: its row, spec, record or error",
                           description="Print one job's row, its spec and record as JSON, and its error if it failed.",
                           epilog=example("vfmbench runs show 12"))
    show.add_argument("ref", help="a row id or at least 6 characters of its spec hash")
    _add_index(show)
    show.set_defaults(func=_show)
    rm = runs.add_parser("rm", help="remove rows (run folders stay on disk)",
                         description="Remove rows from the index, named by id, spec-hash prefix or filters; the run "
                                     "folders stay on disk, and a sweep reruns a removed job.",
                         epilog=example("vfmbench runs rm --sweep example --status failed"))
    rm.add_argument("refs", nargs="*", help="row ids or spec-hash prefixes (or give filters instead)")
    _add_filters(rm)
    rm.add_argument("--force", action="store_true", help="also rows a live sweep of this machine is running")
    rm.set_defaults(func=_rm)


def _filters(args: argparse.Namespace) -> dict[str, list[str]]:
    out = {}
    for key in ("status", "sweep", "task", "encoder", "method", "mask"):
        values = getattr(args, key, None)
        if values:
            out[key] = [v for item in values for v in item.split(",") if v]
    return out


def _list(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json, print_table
    from vfmbench.experiments.index import RunsIndex

    with RunsIndex(args.index, create=False) as index:
        rows = [r.summary() for r in index.rows(**_filters(args))]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, _COLUMNS)
    return 0


def _show(args: argparse.Namespace) -> int:
    import json
    import sys

    from vfmbench.cli._common import print_json
    from vfmbench.experiments.index import RunsIndex

    with RunsIndex(args.index, create=False) as index:
        row = index.get(args.ref)
    problems = []

    def parse(column: str, text: str | None):
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            problems.append(f"index row {row.id} ({row.key}): its {column} is not valid JSON ({exc}); "
                            f"remove the row with `vfmbench runs rm {row.id}` (a sweep reruns the job)")
            return None

    doc = {**row.summary(), "spec_hash": row.spec_hash, "spec": parse("spec", row.spec_json),
           "record": parse("record", row.record_json)}
    error = doc.pop("error")
    print_json(doc)
    if error:
        print(f"\nerror:\n{error}")
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def _rm(args: argparse.Namespace) -> int:
    import platform

    from vfmbench.experiments.index import RunsIndex
    from vfmbench.utils.errors import ConfigError
    from vfmbench.utils.io import pid_alive

    filters = _filters(args)
    if not args.refs and not filters:
        raise ConfigError("name the rows to remove: ids, hash prefixes or filters (e.g. --sweep NAME --status failed)")
    with RunsIndex(args.index, create=False) as index:
        rows = [index.get(ref) for ref in args.refs] if args.refs else index.rows(**filters)
        live = [r for r in rows if r.status == "running" and r.host == platform.node() and r.pid and pid_alive(r.pid)]
        if live and not args.force:
            raise ConfigError(f"{len(live)} of these rows are running in a live sweep (pid {live[0].pid}); "
                              "stop it first or pass --force")
        n = index.remove([r.id for r in rows])
    print(f"removed {n} row(s) from {index.path} (run folders are kept)")
    return 0
