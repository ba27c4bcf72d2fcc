"""Helpers shared by command modules."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from tabulate import tabulate

from vfmbench.registry import Registry
from vfmbench.utils.config import apply_overrides, load_yaml
from vfmbench.utils.errors import VfmbenchError

T = TypeVar("T")


def _shown(value: Any) -> str:
    """A default as a command line would spell it: lists comma-separated, paths as written."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """The --help layout of every command. An option's default is appended to its help as
    "(default: X)" wherever there is one to state (not for None, False or an empty list: those
    options say in words what leaving them out does), so help and defaults cannot drift apart.
    Text is wrapped, except lines that start with a space (the example of the epilog)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS
                or (isinstance(default, (list, tuple)) and not default) or "%(default)" in text
                or (not action.option_strings and action.nargs not in ("?", "*"))):
            return text
        return f"{text} (default: {_shown(default).replace('%', '%%')})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n".join(indent + line if line.startswith(" ") else fill(line, width, indent)
                         for line in text.splitlines())


class Parser(argparse.ArgumentParser):
    """An argument parser with `HelpFormatter`; subcommand parsers inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def example(command: str) -> str:
    """A command's epilog: one working example (tests/test_cli_help.py parses it)."""
    return f"example:\n  {command}"


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


def add_config_args(p: argparse.ArgumentParser, item: str, docs: str) -> None:
    """``--config YAML`` and repeatable ``--set KEY=VALUE``; `item` is an example override the
    command accepts (e.g. ``train.steps=500``), `docs` where its keys are described."""
    p.add_argument("--config", metavar="YAML", help=f"a YAML file of config keys ({docs})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key, e.g. --set {item} (repeatable; values are YAML)")


def config_dict(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The config mapping from --config and --set, and a name for error messages."""
    data = load_yaml(args.config) if args.config else {}
    data = apply_overrides(data, args.overrides)
    return data, (args.config or "command-line config")


def with_options(data: dict[str, Any], source: str, **options: Any) -> dict[str, Any]:
    """`data` (a config mapping) with the values of the command-line options given (None: not given),
    which set the config key of their name; a key given both ways with different values is a
    ConfigError, never a silent choice."""
    from vfmbench.utils.errors import ConfigError

    for key, value in options.items():
        if value is None:
            continue
        if key in data and data[key] != value:
            raise ConfigError(f"{key} is given twice, {value!r} by its command-line option and {data[key]!r} in "
                              f"{source}; give it once")
        data[key] = value
    return data


def check_random_weights(args: argparse.Namespace, encoder: str | None) -> None:
    """`ConfigError` when ``--random-weights`` is given for an encoder that has no pretrained
    weights to replace (trained end to end, random already, the state, or an RL agent's own conv
    encoder), instead of ignoring it."""
    if not getattr(args, "random_weights", False) or encoder is None:
        return
    from vfmbench.encoders import get_encoder_spec
    from vfmbench.utils.errors import ConfigError, UnknownNameError

    try:
        weights = get_encoder_spec(encoder).weights
    except UnknownNameError:
        weights = None  # not a registry encoder (an RL agent's conv or state encoder)
    if weights is None:
        raise ConfigError(f"--random-weights: encoder {encoder!r} has no pretrained weights to replace; leave "
                          "--random-weights out (it applies to pretrained entries, vfmbench encoders list)")


# Hints the library writes for Python callers and config files, and how each command spells them.
_WEIGHTS_HINT = re.compile(r"(\n *)?for random weights ask explicitly: create_encoder\('[^']*', pretrained=False\)")
_DEVICE_HINT = re.compile(r"use train\.device=cpu or auto")
_DEVICE_KEY = re.compile(r"\btrain\.device\b")


def _weights_hint(args: argparse.Namespace) -> Callable[[re.Match[str]], str]:
    def hint(match: re.Match[str]) -> str:
        if "random_weights" in vars(args):
            return f"{match.group(1) or ''}for random weights pass --random-weights"
        if "run" in vars(args):
            return f"{match.group(1) or ''}install them (the run was trained with them)"
        return ""

    return hint


def command_hints(exc: VfmbenchError, args: argparse.Namespace) -> VfmbenchError:
    """`exc` with the library's hints given as the command's own options: ``create_encoder(...,
    pretrained=False)`` -> ``--random-weights`` (for a command without it: install the weights, or
    no such hint), ``train.device=cpu`` -> ``--device cpu`` (commands with --device) or ``--set
    train.device=cpu`` (commands with --set). The same error class, chained to `exc`; `exc` itself
    when nothing changes."""
    text = str(exc.args[0]) if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
    new = _WEIGHTS_HINT.sub(_weights_hint(args), text)
    if "device" in vars(args):
        new = _DEVICE_KEY.sub("--device", _DEVICE_HINT.sub("use --device cpu or --device auto", new))
    elif "overrides" in vars(args):
        new = _DEVICE_HINT.sub("use --set train.device=cpu (or auto)", new)
    if new == text:
        return exc
    try:
        out = type(exc)(new)
    except Exception:  # an error class with another constructor: keep its type's family
        out = VfmbenchError(new)
    out.__cause__ = exc
    return out
