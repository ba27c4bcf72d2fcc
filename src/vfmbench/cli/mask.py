"""`vfmbench mask reference|eval|show`: SAM-G references, mask quality and figures."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example, positive_int, seed_int


def _segmenter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segmenter", required=True, help="segmenter (vfmbench segmenters list)")
    p.add_argument("--reference", metavar="REF.json", help="SAM-G reference (default: the task's ground truth, seed 0)")
    p.add_argument("--device", help="auto (CUDA if available; the default), cpu, cuda, cuda:N")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], help="precision of the image encoders (default float32)")
    p.add_argument("--random-weights", action="store_true", help="random SAM/DINOv2 weights (tests only)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a segmenter option, e.g. --set refine=false (SegmenterConfig fields, docs/masking.md; "
                        "repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mask", help="SAM-G masking: references, mask quality, figures",
                       description="SAM-G masking (docs/masking.md): write a task's reference frame and masks, "
                                   "measure a segmenter's masks against ground truth under shifts, and draw what "
                                   "it does on one frame.",
                       epilog=example("vfmbench mask eval --task fetch_push --segmenter oracle "
                                      "--shifts none,video_hard"))
    inner = p.add_subparsers(dest="mask_command", metavar="COMMAND")
    inner.required = True

    r = inner.add_parser("reference", help="write a task's reference frame, object masks and extra points",
                         description="Write REF.json (objects and their points, editable), REF.png and REF.mask.png: "
                                     "from the task's ground truth, or from --image and --mask-png.",
                         epilog=example("vfmbench mask reference --task fetch_push --out refs/fetch_push.json"))
    r.add_argument("--task", help="task whose first frame and ground-truth masks make the reference")
    r.add_argument("--out", required=True, metavar="REF.json", help="the reference to write (PNGs beside it)")
    r.add_argument("--seed", type=seed_int, default=0, help="episode seed of the task's frame")
    r.add_argument("--groups", help="comma-separated mask groups, one object each (default: the task's)")
    r.add_argument("--points", type=int, default=3, help="extra points per object (the paper's: 3)")
    r.add_argument("--image", help="a frame of one's own (PNG) instead of the task's")
    r.add_argument("--mask-png", help="its mask (PNG; 0 background, one object per non-zero value)")
    r.set_defaults(func=_reference)

    e = inner.add_parser("eval", help="IoU and boundary F of a segmenter against ground truth, per shift",
                         description="Segment frames of the task's scripted-expert episodes under each shift and "
                                     "compare with the ground-truth masks: IoU and boundary F per shift.",
                         epilog=example("vfmbench mask eval --task fetch_push --segmenter oracle --shifts "
                                        "none,video_hard --episodes 5"))
    e.add_argument("--task", required=True, help="task name (vfmbench tasks list)")
    _segmenter_args(e)
    e.add_argument("--shifts", default="none", help="comma-separated shifts")
    e.add_argument("--episodes", type=positive_int, default=5, help="episodes per shift")
    e.add_argument("--every", type=positive_int, default=10, help="every N-th step of each episode")
    e.add_argument("--out", help="write the report as JSON to this file")
    e.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    e.set_defaults(func=_eval)

    s = inner.add_parser("show", help="figure: frame, similarity maps, prompts of each round, mask",
                         description="Draw a SAM-G segmenter at work on one frame: the frame, its similarity maps, "
                                     "the prompts of each decoding round and the mask, beside the ground truth.",
                         epilog=example("vfmbench mask show --task fetch_push --segmenter sam_vit_b --shift video_hard "
                                        "--out sam_g.png"))
    s.add_argument("--task", required=True, help="task name (vfmbench tasks list)")
    _segmenter_args(s)
    s.add_argument("--shift", default="none", help="the shift the frame is rendered under")
    s.add_argument("--seed", type=seed_int, default=1000, help="episode seed of the frame")
    s.add_argument("--out", required=True, metavar="FIG.png", help="the figure to write")
    s.set_defaults(func=_show)


def _options(args: argparse.Namespace) -> dict:
    """The segmenter options: --set's, and the flags given (a flag and a --set of the same option
    that disagree are refused)."""
    from vfmbench.utils.config import apply_overrides
    from vfmbench.utils.errors import ConfigError

    opts = apply_overrides({}, args.overrides)
    flags = {"--device": ("device", args.device), "--dtype": ("dtype", args.dtype),
             "--reference": ("reference", args.reference),
             "--random-weights": ("pretrained", False if args.random_weights else None)}
    for flag, (key, value) in flags.items():
        if value is None:
            continue
        if key in opts and opts[key] != value:
            raise ConfigError(f"{flag} and --set {key}={opts[key]} disagree: give one")
        opts[key] = value
    return opts


def _reference(args: argparse.Namespace) -> int:
    from vfmbench.masking.reference import reference_from_pngs, reference_from_task, write_reference
    from vfmbench.utils.errors import ConfigError

    if args.image or args.mask_png:
        if not (args.image and args.mask_png):
            raise ConfigError("give both --image and --mask-png")
        ref = reference_from_pngs(args.image, args.mask_png, points=args.points)
        if args.task:
            ref.task = args.task
    elif args.task:
        groups = [g.strip() for g in args.groups.split(",")] if args.groups else None
        ref = reference_from_task(args.task, seed=args.seed, groups=groups, points=args.points)
    else:
        raise ConfigError("give --task (the task's ground truth) or --image and --mask-png")
    path = write_reference(ref, args.out)
    print(f"{path}: {len(ref.names)} objects ({', '.join(ref.names)}), {ref.points.shape[1]} points each; "
          f"edit the points in the .json by hand if you like")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vfmbench.cli._common import print_json, print_table, writable_file
    from vfmbench.masking.quality import evaluate_quality
    from vfmbench.utils.io import write_json_atomic

    writable_file(args.out)
    shifts = [s.strip() for s in args.shifts.split(",") if s.strip()]
    report = evaluate_quality(args.task, args.segmenter, _options(args), shifts, args.episodes, args.every)
    if args.out:
        write_json_atomic(Path(args.out), report.to_dict())
    if args.json:
        print_json(report.to_dict())
    else:
        print(f"{args.task}, segmenter {args.segmenter}: {args.episodes} episodes, every {args.every}th step")
        print_table([vars(r) for r in report.rows], ["shift", "iou", "iou_std", "boundary_f", "frames", "seconds"])
    return 0


def _show(args: argparse.Namespace) -> int:
    from vfmbench.masking.figures import show
    from vfmbench.masking.quality import episode_frames
    from vfmbench.masking.segmenters import build_segmenter
    from vfmbench.utils.errors import ConfigError

    seg = build_segmenter(args.segmenter, _options(args), task=args.task)
    if not hasattr(seg, "model"):
        raise ConfigError(f"mask show draws SAM-G's similarity maps and prompts; {args.segmenter} has none")
    frames, truth = episode_frames(args.task, args.shift, 1, 10 ** 6, seed=args.seed)
    path = show(seg, frames[0], args.out, truth[0], title=f"{args.task} ({args.shift}), {args.segmenter}")
    print(path)
    return 0
