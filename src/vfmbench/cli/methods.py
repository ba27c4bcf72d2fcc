"""`vfmbench methods list|show|presets [--json]`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import add_list_command, example


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the policy learning methods and the papers' presets",
                       description="The policy learners vfmbench train takes (--method) and the papers' training "
                                   "presets (--preset); docs/methods.md.",
                       epilog=example("vfmbench methods show bc"))
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_list_command(s.add_parser("list", help="method names, papers, goal conditioning, descriptions",
                                  description="One row per learning method.",
                                  epilog=example("vfmbench methods list")), _methods,
                     _method_row, ["name", "paper", "goal_conditioning", "description"])
    show = s.add_parser("show", help="a method's config keys and defaults (set them with --set method_config.KEY=V)",
                        description="Print a method's config keys and their defaults as JSON; vfmbench train sets "
                                    "them with --set method_config.KEY=VALUE.",
                        epilog=example("vfmbench methods show dp_conv"))
    show.add_argument("name", help="method name (vfmbench methods list)")
    show.set_defaults(func=_show)
    add_list_command(s.add_parser("presets", help="the papers' training settings (vfmbench train --preset NAME)",
                                  description="One row per preset: the method, task and length of a paper's "
                                              "training settings.",
                                  epilog=example("vfmbench methods presets --json")),
                     _presets, _preset_row, ["name", "method", "task", "length", "source"])


def _methods():
    from vfmbench.policies import METHODS

    return METHODS


def _method_row(spec) -> dict:
    return {"name": spec.name, "paper": spec.paper, "goal_conditioning": spec.supports_goal,
            "description": spec.description}


def _show(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json
    from vfmbench.policies import get_method_spec
    from vfmbench.utils.config import to_dict

    spec = get_method_spec(args.name)
    print_json({**_method_row(spec), "config": to_dict(spec.config_cls())})
    return 0


def _presets():
    from vfmbench.policies.presets import PRESETS

    return PRESETS


def _preset_row(preset) -> dict:
    from dataclasses import asdict

    row = asdict(preset)
    row["length"] = f"{preset.epochs} epochs" if preset.epochs is not None else f"{preset.train.get('steps')} steps"
    row["task"] = preset.task or "any"
    return row
