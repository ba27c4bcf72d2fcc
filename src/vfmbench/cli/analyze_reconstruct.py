"""`vfmbench analyze reconstruct --encoders A,B --dataset D --out DIR`: a decoder per
encoder from its cached embeddings back to the frames (paper 000 §7.1, Fig. 3, A.3)."""

from __future__ import annotations

import argparse


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths such as 1024,2048,5096, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from vfmbench.cli._common import example, positive_int, seed_int
    from vfmbench.cli.analyze import add_encoders_option

    p = sub.add_parser("reconstruct", help="decoders from frozen embeddings back to frames; held-out error",
                       description="Train one decoder per frozen encoder from its cached embeddings of a dataset's "
                                   "frames back to the frames (paper 000 A.3: hidden 1024,2048,5096, ReLU, "
                                   "3x224x224, 20 epochs, batch 32, AdamW 1e-3); measure the mean squared error on "
                                   "held-out episodes; write reconstruct.json and reconstruct.png (Fig. 3) to --out. "
                                   "Smaller --epochs, --resolution and --hidden make it practical on a CPU.",
                       epilog=example("vfmbench analyze reconstruct --encoders state,random_resnet18 --dataset data/reach "
                                      "--epochs 2 --resolution 64 --hidden 256 --out analysis/reconstruct"))
    add_encoders_option(p, "frozen encoders, comma-separated (vfmbench encoders list)", required=True)
    p.add_argument("--dataset", required=True, help="dataset folder written by vfmbench collect")
    p.add_argument("--out", required=True, help="folder for reconstruct.json and reconstruct.png")
    p.add_argument("--random-weights", action="store_true",
                   help="random weights for encoders that have pretrained ones (labelled '(random)')")
    p.add_argument("--epochs", type=positive_int, default=20, help="training epochs, as in the paper")
    p.add_argument("--resolution", type=positive_int, default=224,
                   help="side of the reconstructed frames in pixels, as in the paper")
    p.add_argument("--hidden", type=_widths, default=(1024, 2048, 5096),
                   help="hidden widths, comma-separated, as in the paper")
    p.add_argument("--batch-size", type=positive_int, default=32, help="decoder batch, as in the paper")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate, as in the paper")
    p.add_argument("--holdout", type=_fraction, default=0.2, help="fraction of episodes held out")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the split, initial weights and batch order")
    p.add_argument("--figure-episodes", type=int, default=1,
                   help="held-out episodes shown in the figure, start and end frame each (0: none)")
    p.add_argument("--cache", help="embedding cache folder (default: VFMBENCH_HOME/cache/embeddings)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--embed-batch-size", type=positive_int, default=64, help="frames per embedding batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from vfmbench.analysis.reconstruct import DecoderConfig, run_reconstruct
    from vfmbench.cache import EmbeddingCache
    from vfmbench.cli._common import print_json
    from vfmbench.cli.embed import _dataset_path

    config = DecoderConfig(hidden=args.hidden, resolution=args.resolution, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, holdout=args.holdout, seed=args.seed)
    record = run_reconstruct(args.encoders, _dataset_path(args.dataset), args.out, config,
                             random_weights=args.random_weights, figure_episodes=args.figure_episodes,
                             cache=EmbeddingCache(args.cache) if args.cache else None, device=args.device,
                             embed_batch_size=args.embed_batch_size, progress=not args.no_progress)
    print(record.markdown())
    print_json({"record": f"{args.out}/reconstruct.json", "figures": [f"{args.out}/{f}" for f in record.figures]})
    return 0
