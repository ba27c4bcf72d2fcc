"""`vfmbench embed --encoder E --dataset D`: compute (or find) a dataset's embeddings in the cache.

Runs on the GPU when present, in batches streamed to disk (SAM's spatial features never need
to fit in memory), with a progress bar. A second run with the same encoder, weights,
preprocessing, options, dataset and precision is a cache hit and computes nothing; after an
interrupted run, it resumes from the frames already embedded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vfmbench.cli._common import check_random_weights, example, positive_int, print_json

DTYPES = ("float32", "bfloat16", "float16")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed a dataset's frames with a frozen encoder (cached)",
                       description="Compute a dataset's embeddings with a frozen encoder into the embedding cache, "
                                   "or find them there: a second run with the same encoder, weights, "
                                   "preprocessing, options, dataset and precision computes nothing, and an "
                                   "interrupted run resumes from the frames already embedded. Prints the cache "
                                   "entry as JSON.",
                       epilog=example("vfmbench embed --encoder imagenet_efficientnet_lite0 --dataset data/reach "
                                      "--batch-size 32"))
    p.add_argument("--encoder", required=True, help="registry name (see `vfmbench encoders list`)")
    p.add_argument("--dataset", required=True, help="dataset folder, or a name under VFMBENCH_HOME/datasets")
    p.add_argument("--array", default="pixels", help="which image array of the dataset")
    p.add_argument("--spatial", action="store_true", help="store spatial features [N, C, h, w] instead of [N, D]")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--random-weights", action="store_true",
                         help="random weights for an encoder that has pretrained ones (labelled '(random)')")
    weights.add_argument("--weights", type=Path, help="a checkpoint file or hub folder instead of VFMBENCH_HOME's")
    p.add_argument("--pooling", help="override the encoder's pooling, for encoders that have one (e.g. mean, grid6, "
                                     "cls; default: the encoder's own)")
    p.add_argument("--out", type=Path, help="cache folder (default: VFMBENCH_HOME/cache/embeddings)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=64, help="frames per batch (lower for SAM)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="compute precision (autocast); stored as float32")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the encoder first (GPU: 1.4-2.6x faster after a minute of compiling)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_embed)


def _dataset_path(name: str) -> Path:
    """`name` as a folder (relative to the current directory), else under VFMBENCH_HOME/datasets;
    a DatasetError naming both places when it is in neither."""
    from vfmbench.utils.errors import DatasetError
    from vfmbench.utils.paths import datasets_dir

    path = Path(name).expanduser()
    if path.exists():
        return path
    named = datasets_dir() / name
    if not path.is_absolute() and named.exists():
        return named
    where = "" if path.is_absolute() else f" (nor is there a dataset {named})"
    raise DatasetError(f"dataset folder {name} does not exist{where}; create it with: vfmbench collect --task TASK "
                       f"--out {name}")


def _embed(args: argparse.Namespace) -> int:
    from vfmbench.cache import EmbeddingCache
    from vfmbench.data.collection import open_dataset
    from vfmbench.encoders import create_encoder, encoder_label
    from vfmbench.training import resolve_device
    from vfmbench.utils.errors import DatasetError

    device = resolve_device(args.device)  # a clear error for cuda on a CPU-only build
    check_random_weights(args, args.encoder)

    dataset = open_dataset(_dataset_path(args.dataset))
    if not dataset.has(args.array):  # before loading any weights
        raise DatasetError(f"{dataset.root} has no array {args.array!r} to embed; it has: "
                           f"{', '.join(dataset.arrays) or 'none'}")
    options = {"pooling": args.pooling} if args.pooling else {}
    if args.weights is not None:
        options["weights"] = args.weights
    encoder = create_encoder(args.encoder, pretrained=False if args.random_weights else None, **options)
    if args.compile:
        encoder.compile_model()
    cache = EmbeddingCache(args.out)
    try:
        result = cache.get_or_compute(encoder, dataset, args.array, spatial=args.spatial,
                                      batch_size=args.batch_size, device=device, precision=args.dtype,
                                      progress=not args.no_progress)
    except KeyboardInterrupt:
        stopped = cache.stats.interrupted
        if stopped is None:
            raise
        print(f"vfmbench: interrupted after {stopped['done']} of {stopped['total']} frames; they are kept in the "
              f"cache, and running the same command again resumes from there", file=sys.stderr)
        return 130
    key = cache.stats.keys[-1]
    print_json({
        "encoder": encoder_label(encoder),
        "dataset": str(dataset.root),
        "array": args.array,
        "spatial": args.spatial,
        "shape": list(result.shape),
        "precision": args.dtype,
        "cache": "hit" if cache.stats.hits else "computed",
        "resumed_frames": cache.stats.resumed,
        "key": key,
        "path": str(cache.root / key),
    })
    return 0
