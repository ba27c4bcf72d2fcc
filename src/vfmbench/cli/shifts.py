"""`vfmbench shifts list [--json]`, and the ``--shift`` / ``--shift-set`` options other commands share."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from vfmbench.cli._common import add_list_command


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shifts", help="list the robustness shifts (distractors, colours, videos)")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_list_command(s.add_parser("list", help="names, descriptions and default options"), _shifts, _shift_row,
                     ["name", "description", "options"])


def add_shift_args(p: argparse.ArgumentParser) -> None:
    """``--shift NAME`` and repeatable ``--shift-set KEY=VALUE``."""
    p.add_argument("--shift", help="robustness shift (vfmbench shifts list); default: the clean task")
    p.add_argument("--shift-set", dest="shift_set", action="append", default=[], metavar="KEY=VALUE",
                   help="a shift option, e.g. --shift-set count=3 (repeatable)")


def shift_options(items: list[str]) -> dict[str, Any]:
    """Options from ``KEY=VALUE`` strings (values parsed as YAML: numbers, lists, booleans)."""
    from vfmbench.utils.config import apply_overrides

    return apply_overrides({}, items, source="--shift-set")


def _shifts():
    from vfmbench.tasks.shifts import SHIFTS

    return SHIFTS


def _shift_row(spec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "options": dataclasses.asdict(spec.options())}
