"""`vfmbench analyze saliency --run RUN --episodes N --out DIR`: FullGrad maps of a trained
policy's action along rollouts in its own task (paper 001 Fig. 5)."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example, positive_int, seed_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "saliency", help="FullGrad saliency of a trained policy's action (paper 001 Fig. 5)",
        description="Roll out a trained run in its own task and compute FullGrad saliency maps (input-gradient "
                    "and bias-gradients of every layer) of its action for frames along the way. Writes "
                    "saliency.json, saliency.npz (frames, maps) and saliency.png (frame, heat map, overlay). "
                    "Convolutional encoders, frozen or trained; token (ViT) encoders and the state encoder "
                    "are refused. See docs/analysis.md.",
        epilog=example("vfmbench analyze saliency --run runs/reach_cnn --episodes 2 --out analysis/saliency"))
    p.add_argument("--run", required=True, help="run folder written by vfmbench train or demo")
    p.add_argument("--out", required=True, help="folder for saliency.json, saliency.npz and saliency.png")
    p.add_argument("--episodes", type=positive_int, default=2, help="held-out episodes to roll out")
    p.add_argument("--every", type=positive_int, default=10,
                   help="a map every this many steps of each episode, from step 0")
    p.add_argument("--target", default="norm",
                   help="the scalar explained: 'norm' (L2 norm of the first predicted action) or an action "
                        "dimension 0, 1, ...")
    p.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    p.add_argument("--seed", type=seed_int, help="first episode seed (default: the evaluation seeds', 1000000)")
    p.add_argument("--envs", type=positive_int, default=5, help="environments stepped in lockstep")
    p.add_argument("--figure-steps", type=positive_int, default=4,
                   help="rows of the figure: maps of the first episode, evenly spaced")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from vfmbench.analysis.saliency import RECORD_FILE, Target, run_saliency
    from vfmbench.cli._common import print_json

    record = run_saliency(args.run, args.out, episodes=args.episodes, every=args.every,
                          target=Target.parse(args.target), step=args.step, seed=args.seed, n_envs=args.envs,
                          figure_steps=args.figure_steps, device=args.device, progress=not args.no_progress)
    if args.json:
        print_json(record.to_dict())
    else:
        mask = ("" if record.mask_mass is None else
                f"; {record.mask_mass:.2f} of the saliency on task parts covering {record.mask_area:.2f} of the frame")
        print(f"{record.task} / {record.encoder} / {record.method}: {record.frames} FullGrad maps of "
              f"{record.target}, completeness gap {record.completeness_gap:.3g}{mask} ({record.seconds:.0f} s)")
        print(f"record: {args.out}/{RECORD_FILE}  figure: {args.out}/{record.figures[0]}")
    return 0
