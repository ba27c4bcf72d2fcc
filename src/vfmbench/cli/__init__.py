"""`vfmbench` command line. One thin module per command group; each has `register(subparsers)`
which adds its parser and sets ``func`` to a handler taking the parsed args."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from vfmbench.cli._common import Parser, command_hints, example
from vfmbench.utils.errors import VfmbenchError

# Command modules, in the order `vfmbench --help` lists them.
COMMAND_MODULES = [
    "demo",
    "sweep",
    "runs",
    "report",
    "collect",
    "train",
    "evaluate",
    "tasks",
    "encoders",
    "weights",
    "embed",
    "shifts",
    "robustness",
    "methods",
    "importers",
    "segmenters",
    "mask",
    "rl",
    "analyze",
]


# Operating-system errors the CLI reports as a message: the disk is full or read-only, a folder is not ours,
# an output path runs through (or onto) a regular file.
_IO_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vfmbench")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vfmbench",
        description="Compare vision backbones for visuomotor policies on simulated robot tasks. "
                    "`vfmbench COMMAND --help` describes a command, its options and their defaults, and "
                    "ends with an example.",
        epilog=example("vfmbench demo --quick"),
    )
    parser.add_argument("--version", action="version", version=f"vfmbench {_version()}",
                        help="print the installed vfmbench version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"vfmbench.cli.{name}").register(sub)
    return parser


def app(argv: list[str] | None = None) -> int:
    """Entry point of the `vfmbench` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except VfmbenchError as exc:
        print(f"vfmbench: error: {command_hints(exc, args)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _IO_ERRORS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"vfmbench: error: {exc.strerror}{where}; finished work is kept: make room or fix the "
              "permissions, then rerun the same command to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vfmbench: interrupted; finished work is kept and a rerun resumes it", file=sys.stderr)
        return 130
    return int(result or 0)
