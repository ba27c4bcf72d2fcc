"""`vfmbench rl train | evaluate | collect`: online RL (DrQ-v2, PIE-G, SAM-G masking)."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import add_config_args, example, positive_int, seed_int
from vfmbench.cli.shifts import add_shift_set, shift_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rl", help="online visual RL: DrQ-v2 and PIE-G, optionally on SAM-G masked frames",
                       description="Train DrQ-v2 or PIE-G agents online, evaluate them under DMC-GB shifts, and "
                                   "collect expert datasets with trained (state) agents. See docs/rl.md.",
                       epilog=example("vfmbench rl train --task dmc_cartpole_swingup --agent drqv2 --frames 100000 "
                                      "--out runs/cartpole"))
    rl = p.add_subparsers(dest="rl_command", metavar="COMMAND")
    rl.required = True

    t = rl.add_parser("train", help="train an agent online (resumable: rerun the same command to continue)",
                      description="Train into --out; --frames is the target, so rerunning the command continues "
                                  "a stopped run. Config keys: agent_config.* (lr, batch_size, nstep, ...), "
                                  "task_config.*, mask_options.* (the --mask wrapper's options, e.g. dilate, "
                                  "fill; vfmbench tasks wrappers), eval_every_frames, eval_episodes, "
                                  "checkpoint_every_frames (docs/rl.md).",
                      epilog=example("vfmbench rl train --task dmc_cartpole_swingup --agent drqv2 --frames 100000 "
                                     "--set agent_config.batch_size=128 --out runs/cartpole"))
    t.add_argument("--task", required=True, help="task name (vfmbench tasks list), e.g. dmc_walker_walk")
    t.add_argument("--agent", choices=["drqv2", "pieg"], help="the RL algorithm (default: drqv2, or the config's)")
    t.add_argument("--encoder", help="drqv2: conv (default) or state; pieg: a registry image encoder "
                                     "(default: imagenet_resnet18)")
    t.add_argument("--random-weights", action="store_true", help="build the PIE-G encoder with random weights")
    t.add_argument("--mask", metavar="SEGMENTER", help="train and evaluate on SAM-G masked frames: oracle "
                                                       "(ground-truth masks) or a SAM-G segmenter (default: no mask)")
    t.add_argument("--mask-reference", metavar="REF.json",
                   help="the SAM-G reference (image + mask) for --mask (default: the task's ground truth at seed 0)")
    t.add_argument("--frames", type=positive_int, help="target environment frames, rounded up to the end of the episode they fall in "
                   "(default: the paper's, 1M or 3M)")
    t.add_argument("--seed", type=seed_int, help="training seed (default: 0, or the config's)")
    t.add_argument("--preset", choices=["drqv2", "samg"],
                   help="hyper-parameters: DrQ-v2's published ones or paper 002 Table 6's (default: drqv2, or the "
                        "config's)")
    t.add_argument("--device", help="auto (CUDA if available), cpu, cuda, cuda:N (default: auto, or the config's)")
    t.add_argument("--max-minutes", type=float, help="stop at the first episode end after this long (checkpointed); "
                                                     "rerun to continue (default: no limit)")
    t.add_argument("--shifts", type=shift_names, default="none",
                   help="after the last frame, evaluate under these shifts (comma-separated)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_args(t, "agent_config.batch_size=128", "docs/rl.md")
    t.set_defaults(func=_train)

    e = rl.add_parser("evaluate", help="returns of trained runs under shifts, in the paper's table layout",
                      description="Evaluate each run's latest checkpoint on the same held-out seeds under each "
                                  "shift; print mean ± std per task and method (over seeds when several runs of a "
                                  "task and method are given, else over episodes).",
                      epilog=example("vfmbench rl evaluate --run runs/cartpole --shifts none,color_hard,video_easy "
                                     "--episodes 10"))
    e.add_argument("--run", nargs="+", required=True, help="run folders (several seeds aggregate)")
    e.add_argument("--shifts", type=shift_names, default="none,color_hard,video_easy,video_hard",
                   help="comma-separated shifts (vfmbench shifts list)")
    add_shift_set(e, "video_hard.sources=[DIR]")
    e.add_argument("--episodes", type=positive_int, default=10, help="episodes per shift (the paper's: 100)")
    e.add_argument("--envs", type=positive_int, default=10, help="environments stepped in lockstep")
    e.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    e.add_argument("--json", action="store_true", help="print the tables and records as JSON")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import dataclasses

    from vfmbench.cli._common import check_random_weights, config_dict, print_json, with_options
    from vfmbench.rl import RLJobSpec, RLRunSpec, default_frames, preset_overrides, run_rl_job
    from vfmbench.utils.config import from_dict

    data, source = config_dict(args)
    with_options(data, source, task=args.task, agent=args.agent, seed=args.seed, device=args.device,
                 preset=args.preset, frames=args.frames, encoder=args.encoder, mask=args.mask,
                 pretrained=False if args.random_weights else None)
    defaults = {f.name: f.default for f in dataclasses.fields(RLRunSpec)}
    agent, preset = data.get("agent", defaults["agent"]), data.get("preset", defaults["preset"])
    data["agent_config"] = {**preset_overrides(preset, agent, args.task), **data.get("agent_config", {})}
    data.setdefault("frames", default_frames(args.task))
    if args.mask_reference:
        data["mask_options"] = {**data.get("mask_options", {}), "reference": args.mask_reference}
    spec = from_dict(RLRunSpec, data, source)
    spec.validate()
    check_random_weights(args, spec.encoder_name)
    record = run_rl_job(RLJobSpec(run=spec, out=args.out, shifts=args.shifts, episodes=spec.eval_episodes,
                                  envs=spec.eval_envs, device=spec.device,
                                  max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                                  progress=not args.no_progress))
    tr = record.train
    summary = {k: v for k, v in asdict(tr).items() if k not in ("evals",)}
    summary["last_eval"] = asdict(tr.last_eval) if tr.last_eval else None
    summary["evaluations"] = [{k: v for k, v in asdict(e).items() if k != "returns"} for e in record.evaluations]
    print_json(summary)
    if not tr.complete:
        print(f"stopped at {tr.frames} of {tr.target_frames} frames; rerun the same command to continue")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json, print_table
    from vfmbench.cli.shifts import shift_options
    from vfmbench.rl.job import record_for_run, return_table

    options = shift_options(args.shift_set, args.shifts)
    records = [record_for_run(r, args.shifts, options, args.episodes, args.envs, args.device,
                              not args.no_progress) for r in args.run]
    tables = return_table(records)
    if args.json:
        print_json({"tables": tables, "runs": [r.to_dict() for r in records]})
        return 0
    for shift, rows in tables.items():
        print(f"\nReturn under {shift} (mean ± std; {args.episodes} episodes per run)")
        print_table(rows, list(rows[0]))
    return 0
