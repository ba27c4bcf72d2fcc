"""Draw tasks clean and under color_easy, color_hard, video_easy and video_hard, with their
ground-truth masks, into one PNG (rows: tasks; columns: settings, then the mask).

    MUJOCO_GL=egl python scripts/make_task_figure.py --family dmc [--dmcgb tests/data/dmcgb]
        [--seed 0] [--steps 10] [--resolution 84] [--out docs/figures/dmc_tasks.png]

With ``--dmcgb DIR`` (a folder laid out as DMC-GB's ``src/env/data``: ``color_easy.pt``,
``color_hard.pt``, ``video_easy/``, ``video_hard/``) the shifts use DMC-GB's own colours and clips;
without it, the built-in colour generator and the procedural video. Every frame is the state
reached from the same seed by the same random actions, so the settings differ in appearance only.
Mask: each mask group in its own colour. Needs the ``viz`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vfmbench.tasks import TASKS, make_task
from vfmbench.utils.imports import require

SETTINGS = ("none", "color_easy", "color_hard", "video_easy", "video_hard")
PALETTE = np.array([(255, 170, 0), (0, 200, 255), (255, 40, 40), (120, 255, 120), (255, 255, 255)], np.uint8)


def shift_options(shift: str, dmcgb: Path | None) -> dict:
    """DMC-GB's own file or clip folder for `shift`, when a DMC-GB data folder is given."""
    if dmcgb is None or shift == "none":
        return {}
    if shift.startswith("color"):
        return {"colors": str(dmcgb / f"{shift}.pt")}
    return {"sources": [str(dmcgb / shift)]}


def frame(name: str, shift: str, options: dict, seed: int, steps: int, resolution: int):
    """The frame after `steps` random actions from `seed` under `shift`, and its masks by group."""
    with make_task(name, shift=shift, shift_options=options, resolution=resolution) as task:
        obs = task.reset(seed)
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            obs = task.step(rng.uniform(-1, 1, task.action_dim) * 0.5).observation
        return obs["pixels"], [task.mask([g]) for g in task.mask_groups]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", help="every task of this family (dmc, adroit, fetch)")
    p.add_argument("--tasks", default="", help="comma-separated task names (instead of --family)")
    p.add_argument("--dmcgb", type=Path, help="DMC-GB data folder (colour files and clip folders)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--resolution", type=int, default=84)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    names = [t for t in args.tasks.split(",") if t] or [s.name for s in TASKS if s.family == args.family]
    if not names:
        p.error("give --family or --tasks")
    plt = require("matplotlib.pyplot", extra="viz")
    fig, axes = plt.subplots(len(names), len(SETTINGS) + 1, figsize=(1.7 * (len(SETTINGS) + 1), 1.8 * len(names)),
                             squeeze=False)
    for row, name in enumerate(names):
        for col, shift in enumerate(SETTINGS):
            pixels, masks = frame(name, shift, shift_options(shift, args.dmcgb), args.seed, args.steps, args.resolution)
            axes[row, col].imshow(pixels)
            if row == 0:
                axes[row, col].set_title("clean" if shift == "none" else shift, fontsize=9)
            if shift == "none":
                coloured = np.zeros_like(pixels)
                for i, mask in enumerate(masks):
                    coloured[mask] = PALETTE[i % len(PALETTE)]
                axes[row, -1].imshow(coloured)
        axes[row, 0].set_ylabel(name.replace("dmc_", "").replace("adroit_", ""), fontsize=9)
    axes[0, -1].set_title("mask", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"{args.out}: {len(names)} tasks x {len(SETTINGS)} settings + masks at {args.resolution}x{args.resolution}")


if __name__ == "__main__":
    main()
