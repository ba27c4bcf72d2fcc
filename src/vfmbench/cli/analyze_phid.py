"""`vfmbench analyze phid --encoders a,b --task fetch_push --shift distractor --trajectories N --out DIR`:
persistent-homology intrinsic dimension of embedding trajectories, clean against shifted (paper 000
§7.2, Table 4)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from vfmbench.cli._common import example, positive_int, seed_int
    from vfmbench.cli.analyze import add_encoders_option

    p = sub.add_parser("phid", help="PHID0 of embedding trajectories, clean vs shifted (paper 000 Table 4)",
                       description="Roll out the task's scripted expert from seeds SEED..SEED+N-1, clean and under "
                                   "--shift (the same trajectories: shifts change only the picture), embed every "
                                   "frame with each frozen encoder, estimate PHID0 of each trajectory from the growth "
                                   "of its minimum spanning tree and write phid.json (per-encoder standardised "
                                   "score) and phid.png to --out. The trajectories are kept under "
                                   "--out/trajectories and reused by a rerun.",
                       epilog=example("vfmbench analyze phid --encoders state,imagenet_efficientnet_lite0 "
                                      "--task fetch_push --shift distractor --trajectories 20 --out analysis/phid"))
    add_encoders_option(p, "frozen encoders, comma-separated (vfmbench encoders list)", required=True)
    p.add_argument("--task", default="fetch_push", help="task with a scripted expert")
    p.add_argument("--shift", default="distractor", help="the shift compared with the clean task")
    p.add_argument("--trajectories", type=positive_int, default=100, help="trajectories, as in the paper")
    p.add_argument("--seed", type=seed_int, default=0, help="first trajectory's seed")
    p.add_argument("--out", required=True, help="folder for phid.json and phid.png")
    p.add_argument("--random-weights", action="store_true",
                   help="random weights for encoders that have pretrained ones (labelled '(random)')")
    p.add_argument("--alpha", type=float, default=1.0, help="weight exponent of the MST edge lengths")
    p.add_argument("--min-points", type=positive_int, default=10, help="smallest subsample")
    p.add_argument("--sizes", type=positive_int, default=9, help="subsample sizes fitted")
    p.add_argument("--reruns", type=positive_int, default=7, help="random subsamples per size")
    p.add_argument("--data", help="folder for the trajectories (default: OUT/trajectories)")
    p.add_argument("--cache", help="embedding cache folder (default: VFMBENCH_HOME/cache/embeddings)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=64, help="frames per embedding batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from vfmbench.analysis.phid import PhidEstimator, run_phid
    from vfmbench.cache import EmbeddingCache
    from vfmbench.cli._common import print_json

    estimator = PhidEstimator(alpha=args.alpha, min_points=args.min_points, sizes=args.sizes, reruns=args.reruns)
    record = run_phid(args.encoders, task=args.task, shift=args.shift, trajectories=args.trajectories,
                      seed=args.seed, out=args.out, estimator=estimator, random_weights=args.random_weights,
                      data_dir=args.data, cache=EmbeddingCache(args.cache) if args.cache else None,
                      device=args.device, batch_size=args.batch_size, progress=not args.no_progress)
    print(record.markdown())
    print_json({"record": f"{args.out}/phid.json", "figures": [f"{args.out}/{f}" for f in record.figures]})
    return 0
