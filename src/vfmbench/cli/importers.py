"""`vfmbench import minari --dataset D4RL/door/expert-v2 --task adroit_door --out DIR`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import example, positive_int

_MINARI_EXAMPLE = ("vfmbench import minari --dataset D4RL/door/expert-v2 --task adroit_door --episodes 100 "
                   "--out data/door")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import demonstrations recorded elsewhere into a dataset folder",
                       description="Import demonstrations recorded elsewhere (Minari's D4RL Adroit datasets) into a "
                                   "vfmbench dataset folder, re-rendered in a vfmbench task (docs/adroit.md).",
                       epilog=example(_MINARI_EXAMPLE))
    s = p.add_subparsers(dest="source", metavar="SOURCE")
    s.required = True
    m = s.add_parser(
        "minari", help="re-render a Minari dataset (D4RL Adroit) in a vfmbench task",
        description="Restore each episode's recorded initial simulator state, replay its actions in the task's "
                    "environment (checking every step against the recorded observations) and write frames, states "
                    "and the recorded actions, one frame every action-repeat environment steps, in the format "
                    "vfmbench collect writes. Datasets that are not local are downloaded with minari's own client.",
        epilog=example(_MINARI_EXAMPLE))
    m.add_argument("--dataset", required=True, help="Minari dataset id, e.g. D4RL/door/expert-v2")
    m.add_argument("--task", required=True, help="task to render in (adroit_door, adroit_hammer, adroit_pen)")
    m.add_argument("--out", required=True, help="new dataset folder (must not exist or be empty)")
    m.add_argument("--episodes", type=positive_int, help="import only the first N episodes (default: all)")
    m.add_argument("--path", metavar="LOCAL_MINARI_ROOT",
                   help="local Minari datasets folder (default: MINARI_DATASETS_PATH or ~/.minari/datasets)")
    m.add_argument("--resolution", type=int, help="image size in pixels (default: the task's, 84)")
    m.add_argument("--masks", action="store_true", help="also store ground-truth masks of the task-relevant parts")
    m.add_argument("--max-drift", type=float, default=1e-3,
                   help="largest allowed difference between replayed and recorded observations")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(func=_minari)


def _minari(args: argparse.Namespace) -> int:
    from vfmbench.data.minari import MinariImportConfig, import_minari
    from vfmbench.tasks import TaskConfig

    task_config = TaskConfig(masks=args.masks)
    if args.resolution is not None:
        task_config.resolution = args.resolution
    cfg = MinariImportConfig(dataset=args.dataset, task=args.task, episodes=args.episodes, path=args.path,
                             max_drift=args.max_drift, task_config=task_config)
    ds = import_minari(cfg, args.out, progress=not args.no_progress)
    drift = max(e["drift"] for e in ds.manifest["episodes"])
    print(f"{ds.root}: {ds.num_episodes} episodes, {ds.n_frames} frames from {args.dataset} "
          f"(largest replay difference {drift:.2g})")
    return 0
