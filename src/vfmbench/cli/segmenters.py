"""`vfmbench segmenters list [--json]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from vfmbench.cli._common import add_list_command, example

    p = sub.add_parser("segmenters", help="segmenters for SAM-G masking (oracle, SAM ViT-B/L/H, SAM 2.1 Hiera)",
                       description="The segmenters --mask accepts: oracle (ground-truth masks) and SAM-G with SAM "
                                   "ViT-B/L/H or SAM 2.1 Hiera-T/S/B+/L (docs/masking.md).",
                       epilog=example("vfmbench segmenters list"))
    inner = p.add_subparsers(dest="segmenters_command", metavar="COMMAND")
    inner.required = True

    def registry():
        from vfmbench.masking.segmenters import SEGMENTERS

        return SEGMENTERS

    add_list_command(inner.add_parser("list", help="list segmenters and the status of their weights",
                                      description="One row per segmenter, with the weights it needs and whether "
                                                  "they are installed.",
                                      epilog=example("vfmbench segmenters list --json")),
                     registry, lambda s: s.to_dict(), ["name", "family", "weights", "weights_status", "description"])
