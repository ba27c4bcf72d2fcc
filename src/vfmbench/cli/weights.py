"""`vfmbench weights list|download|verify|path`: the official weight sets of the `WEIGHTS` registry.

Weight sets are named (the zoo's are named after their encoders) and live under
``$VFMBENCH_HOME/weights/<name>/``; ``used_by`` says which encoders (or parts of other models)
load each. ``download`` fetches from the official source (pooch; huggingface_hub for hub
repositories when installed) and checks the sha256 where one is published; ``verify`` re-checks
installed files (and reads those without a published sha256 as checkpoints); ``path`` says where a file belongs (for placing it by hand; the upstream release's
file name, or any of the weight set's ``also_named`` names, is read from that folder).

``list`` shows a file as ``installed`` only when it passes verification (present, and matching
the published sha256 where one is published); a file that fails is ``corrupt``.
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING

from vfmbench.cli._common import example, print_json, print_table

if TYPE_CHECKING:
    from vfmbench.registry import Registry
    from vfmbench.weights import WeightsSpec

# Modules that register weight sets when imported (add new users of WEIGHTS here).
PROVIDERS = ("vfmbench.encoders",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list, download, verify and locate pretrained weights",
                       description="The official weight sets of the pretrained encoders (and SAM-G's segmenters), "
                                   "kept under $VFMBENCH_HOME/weights/<name>/ and never downloaded implicitly "
                                   "(docs/encoders.md).",
                       epilog=example("vfmbench weights download dinov2_vits14"))
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True

    ls = s.add_parser("list", help="every official weight set: status, format, licence, users, source",
                      description="One row per weight set: installed, missing or corrupt (failing verification), "
                                  "its format, licence, size, whether a sha256 is published, its users and source.",
                      epilog=example("vfmbench weights list"))
    ls.add_argument("--json", action="store_true", help="print JSON (every field) instead of a table")
    ls.set_defaults(func=_list)

    dl = s.add_parser("download", help="fetch weights into VFMBENCH_HOME and verify them",
                      description="Fetch weight sets from their official sources into VFMBENCH_HOME and check the "
                                  "sha256 where one is published.",
                      epilog=example("vfmbench weights download dinov2_vits14 clip_vitb16"))
    dl.add_argument("names", nargs="*", metavar="NAME", help="weight-set names (see `vfmbench weights list`)")
    dl.add_argument("--all", action="store_true", help="every weight set")
    dl.add_argument("--force", action="store_true", help="download again even if the file is there")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    dl.set_defaults(func=_download)

    vf = s.add_parser("verify", help="check installed weights against their sha256",
                      description="Re-check installed files: the published sha256 where there is one, else that "
                                  "the file reads as a checkpoint; exits 1 if any fails or is missing.",
                      epilog=example("vfmbench weights verify imagenet_resnet18"))
    vf.add_argument("names", nargs="*", metavar="NAME", help="weight-set names (default: every installed one)")
    vf.set_defaults(func=_verify)

    pa = s.add_parser("path", help="print where a weight set's file (or hub folder) belongs",
                      description="Print the path a weight set's file (or hub folder) is read from, for placing it "
                                  "by hand.",
                      epilog=example("vfmbench weights path imagenet_resnet18"))
    pa.add_argument("name", metavar="NAME", help="weight-set name (see `vfmbench weights list`)")
    pa.set_defaults(func=_path)


def _registry() -> Registry[WeightsSpec]:
    """The WEIGHTS registry, with every provider's weight sets registered."""
    for module in PROVIDERS:
        importlib.import_module(module)
    from vfmbench.weights import WEIGHTS

    return WEIGHTS


def _selected(names: list[str] | None = None) -> list[WeightsSpec]:
    """The named weight sets (all when `names` is empty); an encoder without weights or an unknown
    name fails clearly."""
    from vfmbench.encoders import ENCODERS
    from vfmbench.utils.errors import ConfigError

    registry = _registry()
    if not names:
        return list(registry)
    bare = [n for n in names if n not in registry and n in ENCODERS and ENCODERS.get(n).weights is None]
    if bare:
        raise ConfigError(f"no pretrained weights exist for {', '.join(bare)} (trained end to end or random)")
    return [registry.get(n) for n in names]


def _list(args: argparse.Namespace) -> int:
    rows = [spec.to_dict() for spec in _selected()]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            r["sha256"] = "published" if r["sha256"] else "none (checked by loading)"
            r["used_by"] = ", ".join(r["used_by"])
        print_table(rows, ["name", "status", "format", "license", "size_mb", "sha256", "used_by", "source"])
        if any(r["status"] == "corrupt" for r in rows):
            print("corrupt: the file fails verification; `vfmbench weights verify NAME` says why")
    return 0


def _download(args: argparse.Namespace) -> int:
    from vfmbench.utils.errors import ConfigError
    from vfmbench.weights import download_weights

    if not args.names and not args.all:
        raise ConfigError("name the weight sets to download (see `vfmbench weights list`) or pass --all")
    for spec in _selected(None if args.all else args.names):
        path = download_weights(spec, force=args.force, progress=not args.no_progress)
        print(f"{spec.name}: {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vfmbench.utils.errors import WeightsError
    from vfmbench.weights.formats import CheckpointError, read_state_dict

    specs = _selected(args.names)
    if not args.names:
        specs = [s for s in specs if s.installed is not None]
    failed = 0
    for spec in specs:
        path = spec.installed  # where this weight set finds its file (a packaged set: inside its package)
        if path is None:
            print(f"{spec.name}: MISSING {spec.path} ({spec.fetch_command})")
            failed += 1
            continue
        try:
            digest = spec.checksum(path)
            if not spec.sha256 and Path(path).is_file():  # nothing to compare with: the file must at least read
                read_state_dict(Path(path))
        except (WeightsError, CheckpointError) as exc:
            print(f"{spec.name}: FAILED {exc}")
            failed += 1
            continue
        except Exception as exc:  # a damaged or foreign file raises anything from EOFError to RuntimeError
            print(f"{spec.name}: FAILED {path} cannot be read as a checkpoint ({type(exc).__name__}: {exc}); "
                  f"delete it and run {spec.fetch_command}")
            failed += 1
            continue
        state = "ok" if spec.sha256 else "readable, no published checksum; loaded files are identified by"
        print(f"{spec.name}: {state} sha256 {digest}")
    if not specs:
        print("no installed weights to verify (see `vfmbench weights list`)")
    return 1 if failed else 0


def _path(args: argparse.Namespace) -> int:
    spec = _selected([args.name])[0]
    print(spec.installed or spec.path)
    return 0
