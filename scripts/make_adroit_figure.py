"""Draw each Adroit task clean and under color_easy, color_hard, video_easy and video_hard, with
its ground-truth mask, into one PNG (rows: tasks; columns: settings, then the mask).

    MUJOCO_GL=egl python scripts/make_adroit_figure.py [--seed 0] [--steps 10] [--resolution 84]
        [--out docs/figures/adroit_tasks.png]

Every frame is the state reached from the same seed by the same random actions, so the settings
differ in appearance only. Mask colours: hand white, objects orange, the pen's target red.
Needs the ``viz`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vfmbench.tasks import make_task
from vfmbench.utils.imports import require

TASKS = ("adroit_door", "adroit_hammer", "adroit_pen")
SETTINGS = ("none", "color_easy", "color_hard", "video_easy", "video_hard")
COLOURS = {"hand": (255, 255, 255), "goal": (255, 40, 40)}  # other groups (objects): orange
OBJECT = (255, 170, 0)


def frames(name: str, shift: str, seed: int, steps: int, resolution: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The frame after `steps` random actions from `seed` under `shift`, and its masks by group."""
    with make_task(name, shift=shift, resolution=resolution) as task:
        task.reset(seed)
        rng = np.random.default_rng(seed)
        obs = None
        for _ in range(steps):
            obs = task.step(rng.uniform(-1, 1, task.action_dim) * 0.3).observation
        assert obs is not None
        return obs["pixels"], {g: task.mask([g]) for g in task.mask_groups}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--resolution", type=int, default=84)
    p.add_argument("--out", default="docs/figures/adroit_tasks.png")
    args = p.parse_args()
    plt = require("matplotlib.pyplot", extra="viz")
    fig, axes = plt.subplots(len(TASKS), len(SETTINGS) + 1, figsize=(2.0 * (len(SETTINGS) + 1), 2.1 * len(TASKS)))
    for row, name in enumerate(TASKS):
        for col, shift in enumerate(SETTINGS):
            pixels, masks = frames(name, shift, args.seed, args.steps, args.resolution)
            axes[row, col].imshow(pixels)
            if row == 0:
                axes[row, col].set_title("clean" if shift == "none" else shift, fontsize=10)
            if shift == "none":
                coloured = np.zeros_like(pixels)
                for group, mask in masks.items():
                    coloured[mask] = COLOURS.get(group, OBJECT)
                axes[row, -1].imshow(coloured)
        axes[row, 0].set_ylabel(name, fontsize=10)
        if row == 0:
            axes[row, -1].set_title("mask", fontsize=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"{args.out}: {len(TASKS)} tasks x {len(SETTINGS)} settings + masks at {args.resolution}x{args.resolution}")


if __name__ == "__main__":
    main()
