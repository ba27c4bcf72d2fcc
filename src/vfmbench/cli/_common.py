"""Helpers shared by command modules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TypeVar

from tabulate import tabulate

from vfmbench.registry import Registry
from vfmbench.utils.config import apply_overrides, load_yaml

T = TypeVar("T")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain-text table of `columns` (None prints as '-', lists and mappings inline)."""
    print(tabulate([[_cell(r.get(c)) for c in columns] for r in rows], headers=columns, tablefmt="simple",
                   disable_numparse=True))


def add_list_command(p: argparse.ArgumentParser, registry: Callable[[], Registry[T]],
                     row: Callable[[T], dict[str, Any]], columns: list[str]) -> argparse.ArgumentParser:
    """Make `p` list a registry (`registry()` imports it when the command runs): one row per
    registered item, in registration order; the table shows `columns`, ``--json`` every field
    of `row`."""
    p.add_argument("--json", action="store_true", help="print JSON (every field) instead of a table")

    def run(args: argparse.Namespace) -> int:
        rows = [row(item) for item in registry()]
        if args.json:
            print_json(rows)
        else:
            print_table(rows, columns)
        return 0

    p.set_defaults(func=run)
    return p


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="a YAML file with config keys (see docs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=500 (repeatable)")


def config_dict(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The config mapping from --config and --set, and a name for error messages."""
    data = load_yaml(args.config) if args.config else {}
    data = apply_overrides(data, args.overrides)
    return data, (args.config or "command-line config")
