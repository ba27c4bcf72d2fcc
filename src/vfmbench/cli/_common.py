"""Helpers shared by command modules."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vfmbench.utils.config import apply_overrides, load_yaml


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain fixed-width table."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="a YAML file with config keys (see docs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=500 (repeatable)")


def config_dict(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The config mapping from --config and --set, and a name for error messages."""
    data = load_yaml(args.config) if args.config else {}
    data = apply_overrides(data, args.overrides)
    return data, (args.config or "command-line config")
