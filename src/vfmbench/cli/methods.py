"""`vfmbench methods list|show|presets [--json]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the policy learning methods and the papers' presets")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    ls = s.add_parser("list", help="method names, papers, goal conditioning, descriptions")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)
    show = s.add_parser("show", help="a method's config keys and defaults (set them with --set method_config.KEY=V)")
    show.add_argument("name")
    show.set_defaults(func=_show)
    pr = s.add_parser("presets", help="the papers' training settings (vfmbench train --preset NAME)")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.set_defaults(func=_presets)


def _method_row(name: str) -> dict:
    from vfmbench.policies import get_method_spec

    spec = get_method_spec(name)
    return {"name": name, "paper": spec.paper, "goal_conditioning": spec.supports_goal,
            "description": spec.description}


def _list(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json, print_table
    from vfmbench.policies import list_methods

    rows = [_method_row(n) for n in list_methods()]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["name", "paper", "goal_conditioning", "description"])
    return 0


def _show(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json
    from vfmbench.policies import get_method_spec
    from vfmbench.utils.config import to_dict

    spec = get_method_spec(args.name)
    print_json({**_method_row(args.name), "config": to_dict(spec.config_cls())})
    return 0


def _presets(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from vfmbench.cli._common import print_json, print_table
    from vfmbench.policies.presets import get_preset, list_presets

    rows = [asdict(get_preset(n)) for n in list_presets()]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            r["length"] = f"{r['epochs']} epochs" if r["epochs"] is not None else f"{r['train'].get('steps')} steps"
            r["task"] = r["task"] or "any"
        print_table(rows, ["name", "method", "task", "length", "source"])
    return 0
