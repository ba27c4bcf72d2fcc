"""`vfmbench evaluate --run RUN [--episodes N] [--video FILE.gif] [--shift S [--shift-set S.KEY=V]]`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example, positive_int
from vfmbench.cli.shifts import add_shift_args, shift_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="roll out a trained run on held-out seeds",
                       description="Load a run's latest (or --step) checkpoint and report its success rate on "
                                   "held-out seeds, on the clean task or under --shift (also for a run whose "
                                   "training data was rendered under a shift: a warning says so).",
                       epilog=example("vfmbench evaluate --run runs/reach_state --episodes 50 --shift distractor "
                                      "--shift-set distractor.count=3"))
    p.add_argument("--run", required=True, help="run folder written by vfmbench train or demo")
    p.add_argument("--episodes", type=positive_int, default=50, help="held-out episodes")
    p.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    p.add_argument("--envs", type=positive_int, default=10, help="environments stepped in lockstep")
    p.add_argument("--video", help="write a GIF of the first episodes to this file")
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--act", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of how the trained policy acts, for this evaluation only (repeatable): "
                        "Diffusion Policy's action_horizon (actions executed per sampled chunk) and "
                        "inference_steps (DDIM steps)")
    add_shift_args(p)
    from vfmbench.masking.wiring import add_mask_args

    add_mask_args(p, "the run's own mask")  # evaluate through this mask instead of the run's own
    p.set_defaults(func=_run)


def act_options(items: list[str]) -> dict[str, object]:
    """``--act KEY=VALUE`` items as a dict (values parsed as YAML scalars); `ConfigError` for a dotted key."""
    from vfmbench.utils.config import apply_overrides
    from vfmbench.utils.errors import ConfigError

    bad = next((item for item in items if "=" not in item), None)
    if bad is not None:
        raise ConfigError(f"--act {bad!r}: expected KEY=VALUE, e.g. --act action_horizon=4")
    out = apply_overrides({}, items, source="--act")
    nested = [k for k, v in out.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(f"--act {nested[0]}.*: act options are plain keys, e.g. --act action_horizon=4")
    return out


def _run(args: argparse.Namespace) -> int:
    from vfmbench.cli._common import print_json, writable_file
    from vfmbench.experiments.job import EvalSpec, job_for_run, run_job
    from vfmbench.training.frozen_run import check_step

    writable_file(args.video)
    check_step(args.run, args.step, option="--step")
    options = shift_options(args.shift_set, [args.shift]).get(args.shift, {})
    act = act_options(args.act)
    eval_spec = EvalSpec(episodes=args.episodes, envs=args.envs, step=args.step, shift=args.shift,
                         shift_options=options, video=args.video, act_options=act)
    if args.mask:
        from vfmbench.masking.wiring import evaluate_masked

        res, _ = evaluate_masked(args.run, args.mask, args.mask_reference, episodes=args.episodes, envs=args.envs,
                                 step=args.step, shift=eval_spec.shift, shift_options=eval_spec.shift_options,
                                 video=args.video, progress=not args.no_progress, act_options=act)
        task = job_for_run(args.run).run.task
    else:
        record = run_job(job_for_run(args.run, eval_spec, progress=not args.no_progress))
        res, task = record.evaluation, record.task
    assert res is not None
    if args.json:
        print_json(res.to_dict())
    else:
        shown = (task if res.shift == "none" else f"{task} under {res.shift}") + (f" (mask {args.mask})" if args.mask else "")
        shown += "".join(f", {k}={v}" for k, v in act.items())
        print(f"{shown}: success {res.success_rate:.2f} over {res.episodes} episodes "
              f"(any-step success {res.success_any_rate:.2f}, mean return {res.mean_return:.2f}, {res.seconds:.0f} s)"
              + (f"; video {res.video}" if res.video else ""))
    return 0
