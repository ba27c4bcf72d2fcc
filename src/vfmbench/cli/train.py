"""`vfmbench train --dataset DIR --encoder E --method M --out RUN`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from vfmbench.cli._common import add_config_args, example, seed_int

    p = sub.add_parser("train", help="train a policy on a dataset (resumable) and evaluate it",
                       description="Train METHOD with ENCODER on a collected dataset into --out, then evaluate it on "
                                   "held-out seeds. Config keys: method_config.* (e.g. lr, batch_size, "
                                   "goal_conditioned; vfmbench methods show METHOD), train.* (steps, augment, "
                                   "eval_every, eval_episodes, device, precision, compile, ...; the table in "
                                   "docs/methods.md#one-trainer) and "
                                   "encoder_options.* (docs/encoders.md). Rerunning the same command resumes.",
                       epilog=example("vfmbench train --dataset data/reach --encoder state --method bc "
                                      "--set train.steps=2000 --out runs/reach_state"))
    p.add_argument("--dataset", required=True, help="dataset folder written by vfmbench collect")
    p.add_argument("--task", help="task to evaluate on (default: the config's, else the dataset's task)")
    p.add_argument("--encoder", required=True, help="encoder name (vfmbench encoders list)")
    p.add_argument("--method", help="learning method (vfmbench methods list; default: bc, or the preset's)")
    p.add_argument("--preset", help="a paper's settings (vfmbench methods presets); --config/--set keys win")
    p.add_argument("--seed", type=seed_int,
                   help="training seed: weights, batches, augmentation (default: 0, or the config's)")
    p.add_argument("--random-weights", action="store_true",
                   help="random weights for an encoder that has pretrained ones (labelled '(random)')")
    p.add_argument("--out", required=True, help="run folder (rerun the same command to resume)")
    p.add_argument("--no-eval", action="store_true", help="skip the rollout evaluation")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    from vfmbench.masking.wiring import add_mask_args

    add_mask_args(p, "the dataset's own observations")  # the dataset's episodes re-collected through the mask (once, beside it)
    add_config_args(p, "train.steps=500", "docs/methods.md")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from vfmbench.cli._common import check_random_weights, config_dict, print_json, with_options
    from vfmbench.data.collection import open_dataset
    from vfmbench.experiments.job import EvalSpec, JobSpec, run_job
    from vfmbench.training import RunSpec
    from vfmbench.utils.config import from_dict

    dataset = args.dataset
    if args.mask:
        from vfmbench.masking.wiring import masked_dataset

        dataset = masked_dataset(dataset, args.mask, args.mask_reference, progress=not args.no_progress)
    ds = open_dataset(dataset)
    data, source = config_dict(args)
    with_options(data, source, task=args.task, encoder=args.encoder, seed=args.seed, method=args.method)
    data.setdefault("task", ds.task["task"])
    if args.preset:
        from vfmbench.policies.presets import apply_preset

        data = apply_preset(args.preset, data, ds.n_frames)
    check_random_weights(args, data.get("encoder"))
    with_options(data, source, pretrained=False if args.random_weights else None)
    spec = from_dict(RunSpec, data, source)
    eval_spec = EvalSpec(episodes=0 if args.no_eval else spec.train.eval_episodes, envs=spec.train.eval_envs)
    record = run_job(JobSpec(run=spec, out=args.out, dataset=str(ds.root), eval=eval_spec,
                             progress=not args.no_progress))
    summary = {k: v for k, v in asdict(record).items() if k not in ("train", "evaluation", "robustness")}
    summary["success_rate"] = record.success_rate
    summary["train"] = {k: v for k, v in asdict(record.train).items() if k != "evals"}
    print_json(summary)
    return 0
