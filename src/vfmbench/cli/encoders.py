"""`vfmbench encoders list [--json]`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encoders", help="list the registered vision encoders")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    ls = s.add_parser("list", help="names, embedding sizes, whether they train, weights status")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from vfmbench.encoders import get_encoder_spec, list_encoders

    rows = [get_encoder_spec(n).to_dict() for n in list_encoders()]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            r["embed_dim"] = r["embed_dim"] if r["embed_dim"] is not None else "task"
        print_table(rows, ["name", "family", "embed_dim", "trainable", "weights", "description"])
    return 0
