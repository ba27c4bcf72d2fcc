"""`vfmbench segmenters list [--json]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from vfmbench.cli._common import add_list_command

    p = sub.add_parser("segmenters", help="segmenters for SAM-G masking (oracle, SAM ViT-B/L/H)")
    inner = p.add_subparsers(dest="segmenters_command", metavar="COMMAND")
    inner.required = True

    def registry():
        from vfmbench.masking.segmenters import SEGMENTERS

        return SEGMENTERS

    add_list_command(inner.add_parser("list", help="list segmenters and the status of their weights"),
                     registry, lambda s: s.to_dict(), ["name", "family", "weights", "weights_status", "description"])
