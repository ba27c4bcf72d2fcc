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


def seed_int(text: str) -> int:
    """argparse type: a seed, a whole number from 0 to 2**32 - 1 (what NumPy and MuJoCo accept)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32 - 1, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def writable_file(path: str | None) -> None:
    """Fail now, before any work, if `path` (an output file) cannot be written."""
    if path is None:
        return
    import os
    from pathlib import Path

    from vfmbench.utils.errors import ConfigError

    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder of {path}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot write {path}: permission denied; choose another output path")


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="a YAML file with config keys (see docs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=500 (repeatable)")


def config_dict(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The config mapping from --config and --set, and a name for error messages."""
    data = load_yaml(args.config) if args.config else {}
    data = apply_overrides(data, args.overrides)
    return data, (args.config or "command-line config")
