"""Draw one task under every robustness shift, with its ground-truth masks, into a PNG.

    MUJOCO_GL=egl python scripts/make_shift_figure.py [--task fetch_push] [--seed 28]
        [--resolution 128] [--out docs/figures/shifts_fetch_push.png]

Top row: the frame under each shift, same seed. Bottom row: the ground-truth mask of that
frame, coloured by part (object, gripper, goal); distractors never enter it. Needs the ``viz``
extra (matplotlib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vfmbench.tasks import make_task
from vfmbench.tasks.shifts import list_shifts
from vfmbench.utils.imports import require

# mask part -> (RGB, colour name for the caption)
GROUP_COLOURS = {
    "object": ((255, 170, 0), "orange"),
    "gripper": ((0, 200, 255), "cyan"),
    "arm": ((120, 120, 255), "blue"),
    "goal": ((255, 40, 40), "red"),
}


def render_row(task: str, seed: int, resolution: int, steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames ``[R, R, 3]`` and part-coloured masks ``[R, R, 3]`` of `task` under every shift."""
    frames, masks = [], []
    for shift in list_shifts():
        with make_task(task, resolution=resolution, shift=shift) as t:
            obs = t.reset(seed)
            for _ in range(steps):
                obs = t.step(t.expert_action()).observation
            coloured = np.zeros((resolution, resolution, 3), np.uint8)
            for group in t.mask_groups:
                coloured[t.mask([group])] = GROUP_COLOURS[group][0]
            frames.append(obs["pixels"])
            masks.append(coloured)
    return frames, masks


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="fetch_push")
    p.add_argument("--seed", type=int, default=28)
    p.add_argument("--steps", type=int, default=0, help="expert steps before the frame")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--out", default="docs/figures/shifts_fetch_push.png")
    args = p.parse_args(argv)
    require("matplotlib", extra="viz")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames, masks = render_row(args.task, args.seed, args.resolution, args.steps)
    shifts = list_shifts()
    fig, axes = plt.subplots(2, len(shifts), figsize=(2.0 * len(shifts), 4.3))
    for i, name in enumerate(shifts):
        axes[0, i].imshow(frames[i])
        axes[0, i].set_title(name, fontsize=10)
        axes[1, i].imshow(masks[i])
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("RGB", fontsize=10)
    axes[1, 0].set_ylabel("mask", fontsize=10)
    legend = ", ".join(f"{g} {name}" for g, (_, name) in GROUP_COLOURS.items() if g != "arm")
    fig.suptitle(f"{args.task}, seed {args.seed}, step {args.steps}, {args.resolution}x{args.resolution} "
                 f"(mask colours {legend})", fontsize=9)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
