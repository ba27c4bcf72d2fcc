"""`vfmbench tasks list [--json]`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the registered tasks")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    ls = s.add_parser("list", help="names, action sizes, episode lengths")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from vfmbench.tasks import get_task_spec, list_tasks

    rows = []
    for name in list_tasks():
        s = get_task_spec(name)
        rows.append({
            "name": s.name, "family": s.family, "action_dim": s.action_dim,
            "max_episode_steps": s.max_episode_steps, "proprio": s.default_proprio,
            "goal_conditioned": s.supports_goal, "description": s.description,
        })
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["name", "family", "action_dim", "max_episode_steps", "proprio", "description"])
    return 0
