"""`vfmbench analyze ANALYSIS`: the analyses that explain a ranking. One thin module per analysis
(`cli/analyze_<name>.py`, each with `register(subparsers)`)."""

from __future__ import annotations

import argparse
import importlib
import re
from typing import Callable

from vfmbench.utils.errors import VfmbenchError

# Analyses, in the order `vfmbench analyze --help` lists them.
ANALYSES = [
    "reconstruct",
    "phid",
    "vat",
    "saliency",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyses that explain a ranking: reconstruction, PHID0, VAT, saliency",
                       description="Analyses from the benchmark papers that explain why one encoder beats "
                                   "another. Each writes a JSON record and a figure. See docs/analysis.md.")
    analyses = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    analyses.required = True
    for name in ANALYSES:
        importlib.import_module(f"vfmbench.cli.analyze_{name}").register(analyses)


def encoder_names(text: str) -> list[str]:
    """``--encoders A,B``: comma-separated encoder names (argparse type), at least one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one encoder, comma-separated, e.g. state,random_resnet18")
    return names


def add_encoders_option(p: argparse.ArgumentParser, help: str, **kwargs: object) -> None:
    """The one spelling every analysis takes: ``--encoders A,B`` (comma-separated; given twice, the
    lists are joined, so the abbreviation ``--encoder E --encoder F`` also works)."""
    p.add_argument("--encoders", type=encoder_names, action="extend", metavar="A,B,...", help=help, **kwargs)  # type: ignore[arg-type]


_DEVICE_HINTS = (
    (re.compile(r"use train\.device=cpu or auto"), "use --device cpu or --device auto"),
    (re.compile(r"\btrain\.device\b"), "--device"),
)
_WEIGHTS_HINT = re.compile(r"for random weights ask explicitly: create_encoder\('[^']*', pretrained=False\)")


def command_hints(exc: VfmbenchError, random_weights: bool = True) -> VfmbenchError:
    """`exc` with the library's hints (written for Python and config files) given as the analyze
    command's own options: ``train.device=cpu`` -> ``--device cpu``, ``create_encoder(...,
    pretrained=False)`` -> ``--random-weights`` (or, for a command without that option, no such
    hint). The same error class, chained to `exc`."""
    text = str(exc.args[0]) if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
    new = text
    for pattern, repl in _DEVICE_HINTS:
        new = pattern.sub(repl, new)
    new = _WEIGHTS_HINT.sub("for random weights pass --random-weights" if random_weights else
                            "install them (the run was trained with them)", new)
    if new == text:
        return exc
    try:
        out = type(exc)(new)
    except Exception:  # an error class with another constructor: keep its type's family
        out = VfmbenchError(new)
    out.__cause__ = exc
    return out


def run_with_hints(run: Callable[[], int], random_weights: bool = True) -> int:
    """Call `run` (an analyze command's body), giving its errors' hints as command options."""
    try:
        return run()
    except VfmbenchError as exc:
        raise command_hints(exc, random_weights) from exc
