"""`vfmbench collect --task T --episodes N --out DIR`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import add_config_args, config_dict, example, seed_int, with_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="record expert episodes (scripted, or a trained agent) into a dataset folder",
                       description="Run the task's scripted expert, or with --expert RUN a trained online-RL agent "
                                   "(tasks without a scripted expert: DMControl, Adroit), and write an episode "
                                   "dataset (zarr arrays + manifest.json). Interrupted collects keep finished "
                                   "episodes; rerun to resume. Config keys: episodes, seed, keep_failures, "
                                   "action_noise, task_config.* (docs/datasets.md).",
                       epilog=example("vfmbench collect --task fetch_reach --episodes 100 --action-noise 0.3 "
                                      "--out data/reach"))
    p.add_argument("--task", help="task name (vfmbench tasks list); with --expert: the run's task (required "
                                  "without --expert, unless the config names it)")
    p.add_argument("--expert", metavar="RUN", help="roll out this trained agent (vfmbench rl train, e.g. "
                   "--encoder state) with its mean action instead of a scripted expert")
    p.add_argument("--episodes", type=int, help="number of episodes (default: 100, or the config's)")
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--seed", type=seed_int, help="first episode seed (default: 0, or the config's)")
    p.add_argument("--resolution", type=int, help="image size in pixels (default: the task's, 84)")
    p.add_argument("--goal-conditioned", action="store_true", help="also record goal images")
    p.add_argument("--masks", action="store_true", help="also record ground-truth masks of the task-relevant parts")
    p.add_argument("--keep-failures", action="store_true", default=None, help="keep episodes the expert failed")
    p.add_argument("--action-noise", type=float,
                   help="std of Gaussian noise added to executed expert actions (DART; default: 0, or the config's)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes running episodes side by side (the dataset is the same for any number)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from vfmbench.masking.wiring import add_mask_args

    add_mask_args(p)
    add_config_args(p, "task_config.masks=true", "docs/datasets.md")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from vfmbench.data.collection import CollectConfig, collect
    from vfmbench.utils.config import from_dict
    from vfmbench.utils.errors import ConfigError

    if args.expert:
        return _run_agent(args)
    data, source = config_dict(args)
    if not args.task and "task" not in data:
        raise ConfigError("collect needs --task (a task with a scripted expert) or --expert RUN (a trained agent)")
    task_cfg = dict(data.pop("task_config", {}) or {})
    if args.resolution is not None:
        task_cfg["resolution"] = args.resolution
    if args.goal_conditioned:
        task_cfg["goal_conditioned"] = True
    if args.masks:
        task_cfg["masks"] = True
    if args.mask:
        from vfmbench.masking.wiring import refuse_second_mask, with_mask

        refuse_second_mask(task_cfg, args.mask)
        task_cfg = with_mask(task_cfg, args.mask, args.mask_reference)
    with_options(data, source, task=args.task, episodes=args.episodes, seed=args.seed,
                 keep_failures=args.keep_failures, action_noise=args.action_noise)
    cfg = from_dict(CollectConfig, {**data, "task_config": task_cfg}, source)
    ds = collect(cfg, args.out, progress=not args.no_progress, workers=args.workers)
    rate = ds.manifest.get("expert_success_rate")
    print(f"{ds.root}: {ds.num_episodes} episodes, {ds.n_frames} frames"
          + (f", expert success {rate:.2f}" if rate is not None else ""))
    return 0


def _run_agent(args: argparse.Namespace) -> int:
    """`--expert RUN`: the run's agent on the run's task, as `vfmbench.rl.expert.collect_with_agent`."""
    from vfmbench.data.collection import CollectConfig
    from vfmbench.rl.expert import collect_with_agent
    from vfmbench.rl.loop import read_rl_record
    from vfmbench.utils.errors import ConfigError

    unsupported = [flag for flag, given in (("--resolution", args.resolution is not None),
                                            ("--goal-conditioned", args.goal_conditioned), ("--masks", args.masks),
                                            ("--keep-failures", args.keep_failures), ("--mask", bool(args.mask)),
                                            ("--workers", args.workers != 1),
                                            ("--config/--set", bool(args.config or args.overrides))) if given]
    if unsupported:
        raise ConfigError(f"collect --expert records the run's own task settings; {', '.join(unsupported)} "
                          "cannot be combined with it")
    run_task = read_rl_record(args.expert).task
    if args.task and run_task and args.task != run_task:
        raise ConfigError(f"--task {args.task} differs from the task {run_task} the agent in {args.expert} was trained on")
    defaults = CollectConfig()
    ds = collect_with_agent(args.expert, defaults.episodes if args.episodes is None else args.episodes, args.out,
                            seed=defaults.seed if args.seed is None else args.seed,
                            action_noise=defaults.action_noise if args.action_noise is None else args.action_noise,
                            progress=not args.no_progress)
    ret = ds.manifest.get("mean_return")
    print(f"{ds.root}: {ds.num_episodes} episodes, {ds.n_frames} frames from the agent in {args.expert}"
          + (f", mean return {ret:.1f}" if ret is not None else ""))
    return 0
