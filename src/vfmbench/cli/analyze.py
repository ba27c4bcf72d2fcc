"""`vfmbench analyze ANALYSIS`: the analyses that explain a ranking. One thin module per analysis
(`cli/analyze_<name>.py`, each with `register(subparsers)`)."""

from __future__ import annotations

import argparse
import importlib

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
