"""`vfmbench tasks list [--json]`; `vfmbench tasks render --task T [--shift S] [--mask] --out FILE.png`."""

from __future__ import annotations

import argparse

from vfmbench.cli._common import add_list_command, example, seed_int
from vfmbench.cli.shifts import add_shift_args, shift_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the registered tasks; render a frame",
                       description="The registered tasks (Fetch, DeepMind Control, Adroit; docs/tasks.md), the "
                                   "observation wrappers a task config can name, and single rendered frames.",
                       epilog=example("vfmbench tasks list"))
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_list_command(s.add_parser("list", help="names, families, action sizes, episode lengths, rewards, "
                                  "success, experts, shifts and mask groups",
                                  description="One row per registered task; --json adds proprioception, goal "
                                              "conditioning and the description.",
                                  epilog=example("vfmbench tasks list --json")), _tasks, _task_row,
                     ["name", "family", "action_dim", "max_episode_steps", "reward", "success", "expert", "shifts",
                      "mask_groups"])
    add_list_command(s.add_parser("wrappers", help="the observation wrappers a task config can name "
                                  "(task_config.wrappers): names, descriptions, options",
                                  description="The observation wrappers (frame stacking, ground-truth masking) a "
                                              "task config names under task_config.wrappers, with their options.",
                                  epilog=example("vfmbench tasks wrappers")),
                     _wrappers, _wrapper_row, ["name", "description", "options"])
    r = s.add_parser("render", help="write one frame of a task (under a shift, with its mask) to a PNG",
                     description="Reset the task with --seed, run --steps steps (expert or random actions) and write the "
                                 "frame; with --mask the ground-truth mask is written beside it.",
                     epilog=example("vfmbench tasks render --task fetch_push --shift distractor "
                                    "--shift-set distractor.count=3 --mask --scale 3 --out frame.png"))
    r.add_argument("--task", required=True, help="task name (vfmbench tasks list)")
    r.add_argument("--out", required=True, help="PNG file to write")
    r.add_argument("--seed", type=seed_int, default=0, help="episode seed")
    r.add_argument("--steps", type=int, default=0, help="steps before the frame: the scripted expert's "
                   "actions, or seeded random actions for tasks without one")
    r.add_argument("--resolution", type=int, default=84, help="image size in pixels")
    r.add_argument("--mask", action="store_true", help="put the ground-truth mask beside the frame")
    r.add_argument("--mask-groups", help="comma-separated task-relevant parts (default: the task's)")
    r.add_argument("--scale", type=int, default=1, help="enlarge the image by this integer factor")
    add_shift_args(r)
    r.set_defaults(func=_render)


def _tasks():
    from vfmbench.tasks import TASKS

    return TASKS


def _task_row(s) -> dict:
    from vfmbench.tasks.shifts import SHIFTS

    shifts = SHIFTS.names() if s.shifts is None else list(s.shifts)
    return {"name": s.name, "family": s.family, "action_dim": s.action_dim, "max_episode_steps": s.max_episode_steps,
            "reward": s.reward, "success": s.success, "expert": s.expert,
            "shifts": ",".join(x for x in shifts if x != "none"), "mask_groups": ",".join(s.mask_groups),
            "proprio": s.default_proprio, "goal_conditioned": s.supports_goal, "description": s.description}


def _wrappers():
    from vfmbench.tasks import WRAPPERS

    return WRAPPERS


def _wrapper_row(w) -> dict:
    import dataclasses

    return {"name": w.name, "description": w.description, "options": dataclasses.asdict(w.options({}))}


def _render(args: argparse.Namespace) -> int:
    from pathlib import Path

    import imageio.v2 as imageio
    import numpy as np

    from vfmbench.tasks import make_task
    from vfmbench.utils.errors import ConfigError

    if args.scale < 1 or args.steps < 0:
        raise ConfigError("--scale must be at least 1 and --steps at least 0")
    cfg = {"resolution": args.resolution, "shift": args.shift,
           "shift_options": shift_options(args.shift_set, [args.shift]).get(args.shift, {})}
    if args.mask_groups:
        cfg["mask_groups"] = [g.strip() for g in args.mask_groups.split(",") if g.strip()]
    from vfmbench.tasks import TASKS

    spec = TASKS.get(args.task)
    has_expert = spec.expert
    limit = spec.max_episode_steps if "max_episode_steps" not in cfg else cfg["max_episode_steps"]
    if args.steps > limit:
        raise ConfigError(f"--steps {args.steps} is past the end of an episode of {args.task} ({limit} steps)")
    rng = np.random.default_rng(args.seed)
    with make_task(args.task, cfg) as task:
        frame = task.reset(args.seed)["pixels"]
        for _ in range(args.steps):
            action = task.expert_action() if has_expert else rng.uniform(-1, 1, task.action_dim)
            frame = task.step(action).observation["pixels"]
        image = frame
        if args.mask:
            mask = np.repeat(task.mask()[..., None], 3, axis=2).astype(np.uint8) * 255
            image = np.concatenate([frame, mask], axis=1)
    image = np.kron(image, np.ones((args.scale, args.scale, 1), np.uint8))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.imwrite(out, image)
    policy = "" if not args.steps else (" (expert)" if has_expert else " (random actions)")
    print(f"{out}: {args.task} seed {args.seed} step {args.steps}{policy}, shift {cfg['shift']}"
          + (", frame | mask" if args.mask else ""))
    return 0
