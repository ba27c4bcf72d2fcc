"""`vfmbench analyze vat --out DIR [--task0 T0 --task1 T1] [--encoders a,b] [--dataset0 D0 --dataset1 D1]`:
Visual Alignment Testing (paper 001 §III-C, Table IV)."""

from __future__ import annotations

import argparse


def _unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a success rate lies in [0, 1], got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from vfmbench.cli._common import example, positive_int, seed_int
    from vfmbench.cli.analyze import add_encoders_option

    p = sub.add_parser("vat", help="Visual Alignment Testing: swap encoders between two tasks (paper 001 Table IV)",
                       description="For each encoder: train pi0 on --task0 and pi1 on --task1 (two tasks with the "
                                   "same frames and different actions), then pi0->1, pi0's encoder frozen under a "
                                   "head trained anew on task1; evaluate on the same testing environments (blocks "
                                   "of held-out seeds) and test H0: mean |Y - X| <= delta one-sided (paired t-test). "
                                   "Datasets are collected with the scripted experts unless given; runs land in "
                                   "OUT/runs and resume on a rerun. Writes OUT/vat.json and OUT/vat.png.",
                       epilog=example("vfmbench analyze vat --encoders e2e_cnn,imagenet_efficientnet_lite0 --episodes 50 "
                                      "--out analysis/vat"))
    p.add_argument("--out", required=True, help="folder for data, runs, vat.json and vat.png")
    p.add_argument("--task0", default="fetch_reach_red", help="T0, whose encoder is swapped")
    p.add_argument("--task1", default="fetch_reach_blue", help="T1, tested on")
    add_encoders_option(p, default=None, help="encoders, comma-separated (default e2e_cnn,imagenet_efficientnet_lite0: end to end against "
                        "a frozen out-of-domain control)")
    p.add_argument("--random-weights", action="store_true",
                   help="random weights for encoders that have pretrained ones (labelled '(random)')")
    p.add_argument("--method", default="bc", help="policy learner (vfmbench methods list)")
    p.add_argument("--dataset0", help="dataset of task0 (default: collect into OUT/data/TASK0)")
    p.add_argument("--dataset1", help="dataset of task1 (default: collect into OUT/data/TASK1)")
    p.add_argument("--episodes", type=positive_int, default=100, help="expert episodes to collect per task")
    p.add_argument("--environments", type=positive_int, default=20, help="testing environments N")
    p.add_argument("--episodes-per-environment", type=positive_int, default=5,
                   help="held-out episodes per testing environment")
    p.add_argument("--delta", type=_unit, default=0.05, help="threshold delta on mean |Y - X|")
    p.add_argument("--alpha", type=_unit, default=0.05, help="significance level")
    p.add_argument("--steps", type=positive_int, default=2000, help="training steps of policy heads on frozen "
                                                                    "encoders, pi0->1's included")
    p.add_argument("--trainable-steps", type=positive_int, default=3000,
                   help="training steps of encoders trained end to end")
    p.add_argument("--min-pi0-success", type=_rate, default=0.5,
                   help="pi0's success on T0 below this means pi0 did not learn T0: the row is marked 'not "
                        "meaningful' and a warning printed")
    p.add_argument("--no-pair-check", action="store_true",
                   help="skip the check that T0 and T1 render the same first frames for seeds 0-2 (without it, a "
                        "pair that differs is refused: the result would not test visual alignment)")
    p.add_argument("--seed", type=seed_int, default=0, help="training seed of pi0 and pi1 (pi0->1: seed + 1)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--cache", help="embedding cache folder (default: VFMBENCH_HOME/cache/embeddings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from vfmbench.analysis.vat import VatConfig, run_vat
    from vfmbench.cli._common import print_json

    config = VatConfig(task0=args.task0, task1=args.task1, random_weights=args.random_weights, method=args.method,
                       seed=args.seed, episodes=args.episodes, environments=args.environments,
                       episodes_per_environment=args.episodes_per_environment, delta=args.delta, alpha=args.alpha,
                       steps=args.steps, trainable_steps=args.trainable_steps, device=args.device,
                       cache_dir=args.cache, min_pi0_success=args.min_pi0_success,
                       check_pair=not args.no_pair_check)
    if args.encoders is not None:
        config.encoders = args.encoders
        config.encoder_options = {k: v for k, v in config.encoder_options.items() if k in args.encoders}
    config.datasets = {t: d for t, d in ((args.task0, args.dataset0), (args.task1, args.dataset1)) if d}
    record = run_vat(config, args.out, progress=not args.no_progress)
    print(record.markdown())
    print_json({"record": f"{args.out}/vat.json", "figures": [f"{args.out}/{f}" for f in record.figures]})
    return 0
