"""`vfmbench weights list|download|verify|path`: the official weights of the encoder zoo.

Weights live under ``$VFMBENCH_HOME/weights/<encoder>/``. ``download`` fetches from the official
source (urllib; huggingface_hub for hub repositories when installed) and checks the sha256
where one is published; ``verify`` re-checks installed files; ``path`` says where a file belongs
(for placing it by hand).
"""

from __future__ import annotations

import argparse

from vfmbench.cli._common import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list, download, verify and locate pretrained encoder weights")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True

    ls = s.add_parser("list", help="every encoder with official weights: status, format, licence, source")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)

    dl = s.add_parser("download", help="fetch weights into VFMBENCH_HOME and verify them")
    dl.add_argument("names", nargs="*", metavar="NAME", help="encoder names (see `vfmbench weights list`)")
    dl.add_argument("--all", action="store_true", help="every encoder with official weights")
    dl.add_argument("--force", action="store_true", help="download again even if the file is there")
    dl.set_defaults(func=_download)

    vf = s.add_parser("verify", help="check installed weights against their sha256")
    vf.add_argument("names", nargs="*", metavar="NAME", help="encoder names (default: every installed one)")
    vf.set_defaults(func=_verify)

    pa = s.add_parser("path", help="print where an encoder's weights file (or hub folder) belongs")
    pa.add_argument("name", metavar="NAME")
    pa.set_defaults(func=_path)


def _weighted(names: list[str] | None = None) -> list:
    """Specs of the named encoders (all with weights when `names` is empty); unknown or weightless names fail."""
    from vfmbench.encoders import get_encoder_spec, list_encoders
    from vfmbench.utils.errors import ConfigError

    specs = [get_encoder_spec(n) for n in (names or list_encoders())]
    if names:
        bare = [s.name for s in specs if s.weights is None]
        if bare:
            raise ConfigError(f"no pretrained weights exist for {', '.join(bare)} (trained end to end or random)")
    return [s for s in specs if s.weights is not None]


def _list(args: argparse.Namespace) -> int:
    from vfmbench.encoders._weights import weights_path

    rows = [
        {
            "name": s.name,
            "status": s.weights_status(),
            "format": s.weights.format,
            "license": s.weights.license,
            "size_mb": s.weights.size_mb,
            "sha256": s.weights.sha256,
            "source": s.weights.source,
            "path": str(weights_path(s.name, s.weights)),
        }
        for s in _weighted()
    ]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            r["sha256"] = "published" if r["sha256"] else "none"
        print_table(rows, ["name", "status", "format", "license", "size_mb", "sha256", "source"])
    return 0


def _download(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from vfmbench.encoders._weights import download_weights
    from vfmbench.utils.errors import ConfigError

    if not args.names and not args.all:
        raise ConfigError("name the encoders to download (see `vfmbench weights list`) or pass --all")
    for spec in _weighted(None if args.all else args.names):
        with tqdm(desc=spec.name, unit="B", unit_scale=True, unit_divisor=1024) as bar:
            def progress(done: int, total: int | None) -> None:
                bar.total = total
                bar.update(done - bar.n)

            path = download_weights(spec.name, spec.weights, force=args.force, progress=progress)
        print(f"{spec.name}: {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from vfmbench.encoders._weights import verify_weights, weights_path
    from vfmbench.utils.errors import WeightsError

    specs = _weighted(args.names)
    if not args.names:
        specs = [s for s in specs if weights_path(s.name, s.weights).exists()]
    failed = 0
    for spec in specs:
        path = weights_path(spec.name, spec.weights)
        if not path.exists():
            print(f"{spec.name}: MISSING {path} (vfmbench weights download {spec.name})")
            failed += 1
            continue
        try:
            digest = verify_weights(spec.name, spec.weights, path)
        except WeightsError as exc:
            print(f"{spec.name}: FAILED {exc}")
            failed += 1
            continue
        state = "ok" if spec.weights.sha256 else "no published checksum; loaded files are identified by"
        print(f"{spec.name}: {state} sha256 {digest}")
    if not specs:
        print("no installed weights to verify (see `vfmbench weights list`)")
    return 1 if failed else 0


def _path(args: argparse.Namespace) -> int:
    from vfmbench.encoders._weights import weights_path

    spec = _weighted([args.name])[0]
    print(weights_path(spec.name, spec.weights))
    return 0
