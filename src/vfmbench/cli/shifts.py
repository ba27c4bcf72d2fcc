"""`vfmbench shifts list [--json]`, and the shift options other commands share: ``--shift NAME``,
``--shifts A,B`` and ``--shift-set SHIFT.KEY=VALUE`` (one spelling for every command)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from vfmbench.cli._common import add_list_command, example


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shifts", help="list the robustness shifts (distractors, colours, videos)",
                       description="The robustness shifts: changes of what the camera sees that leave the task "
                                   "untouched (docs/shifts.md). Commands take them as --shift / --shifts and their "
                                   "options as --shift-set SHIFT.KEY=VALUE.",
                       epilog=example("vfmbench shifts list --json"))
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_list_command(s.add_parser("list", help="names, descriptions and default options",
                                  description="Every registered shift, with its description and its options' "
                                              "defaults (set them with --shift-set SHIFT.KEY=VALUE).",
                                  epilog=example("vfmbench shifts list")),
                     _shifts, _shift_row, ["name", "description", "options"])


def add_shift_set(p: argparse.ArgumentParser, item: str = "distractor.count=3") -> None:
    """Repeatable ``--shift-set SHIFT.KEY=VALUE``; `item` is the example in its help."""
    p.add_argument("--shift-set", dest="shift_set", action="append", default=[], metavar="SHIFT.KEY=VALUE",
                   help=f"an option of one shift, e.g. --shift-set {item} (repeatable; values are YAML; "
                        "vfmbench shifts list shows each shift's options)")


def add_shift_args(p: argparse.ArgumentParser) -> None:
    """``--shift NAME`` and repeatable ``--shift-set SHIFT.KEY=VALUE``."""
    p.add_argument("--shift", default="none", help="robustness shift (vfmbench shifts list); none: the clean task")
    add_shift_set(p)


def shift_names(text: str) -> list[str]:
    """``--shifts A,B``: comma-separated shift names."""
    return [s.strip() for s in text.split(",") if s.strip()]


def shift_options(items: list[str], shifts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Options per shift from ``SHIFT.KEY=VALUE`` strings (values parsed as YAML: numbers, lists,
    booleans), checked now, before any rollout: each SHIFT must be one of `shifts` (the shifts the
    command renders) and each KEY one of its options."""
    from vfmbench.tasks.shifts import get_shift_spec
    from vfmbench.utils.config import apply_overrides
    from vfmbench.utils.errors import ConfigError

    shown = [s for s in shifts if s != "none"] or ["distractor"]
    options = apply_overrides({}, items, source="--shift-set")
    for name, value in options.items():
        if not isinstance(value, dict):
            raise ConfigError(f"--shift-set {name}={value!r}: name the shift the option belongs to, as "
                              f"SHIFT.KEY=VALUE, e.g. --shift-set {shown[0]}.{name}={value}")
        if name not in shifts:
            raise ConfigError(f"--shift-set names the shift {name!r}, which this command does not render (it "
                              f"renders: {', '.join(shifts)}); add it with --shift or --shifts")
        get_shift_spec(name).options(value)  # an unknown key or a bad value: an error naming it
    return options


def _shifts():
    from vfmbench.tasks.shifts import SHIFTS

    return SHIFTS


def _shift_row(spec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "options": dataclasses.asdict(spec.options())}
