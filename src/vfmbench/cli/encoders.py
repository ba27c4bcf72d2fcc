"""`vfmbench encoders list [--json]`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import add_list_command, example


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encoders", help="list the registered vision encoders",
                       description="The encoder registry: frozen foundation models, encoders trained end to end, "
                                   "random baselines and the privileged state (docs/encoders.md).",
                       epilog=example("vfmbench encoders list"))
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_list_command(s.add_parser("list", help="names, embedding sizes (- where the task sets it), whether they "
                                  "train, weights status",
                                  description="One row per registered encoder; --json adds its input, weights "
                                              "source and licence.",
                                  epilog=example("vfmbench encoders list --json")),
                     _encoders, lambda spec: spec.to_dict(), ["name", "family", "embed_dim", "trainable", "weights",
                                                              "description"])


def _encoders():
    from vfmbench.encoders import ENCODERS

    return ENCODERS
