"""`vfmbench analyze ANALYSIS`: the analyses that explain a ranking. One thin module per analysis
(`cli/analyze_<name>.py`, each with `register(subparsers)`)."""

from __future__ import annotations

import argparse
import importlib

from vfmbench.cli._common import example

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
                                   "another. Each writes a JSON record and a figure. See docs/analysis.md.",
                       epilog=example("vfmbench analyze phid --encoders state,random_resnet18 --trajectories 20 "
                                      "--out analysis/phid"))
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
