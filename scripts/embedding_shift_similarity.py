"""How far a shift moves a frame's embedding: cosine similarity between the clean frame and the same
frame under each shift, per encoder, on rendered task frames. Prints JSON.

    MUJOCO_GL=egl python scripts/embedding_shift_similarity.py [--task fetch_push] [--seeds 0 1 2 3 4 5 6 7]
        [--shifts color_easy color_hard video_easy video_hard distractor]
        [--encoders imagenet_efficientnet_lite0 random_resnet18] [--resolution 84] [--out FILE]

For every seed the task is reset with that seed once per shift (``make_task(task, resolution=R,
shift=S)``), so the robot, object and goal are where they are in the clean frame and only the
appearance differs. Per encoder and shift: the mean, minimum and maximum over seeds of
``cos(embed(clean), embed(shifted))``. As a yardstick, ``other_seed`` is the similarity between
clean frames of different seeds (seed i against seed i+1: the object and goal elsewhere), the
change a policy must see; ``vs_other_seed`` is ``(1 - similarity under the shift) / (1 - other_seed)``,
how much further the shift moves a frame than a new seed does. An encoder that tells shifted frames
apart from clean ones has a similarity well below 1 under a shift; one whose similarity stays near
1 under every shift cannot (nor, if other_seed is near 1 too, tell much else apart).
Encoders whose weights are not installed are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from vfmbench.encoders import create_encoder, encoder_label
from vfmbench.tasks import make_task
from vfmbench.utils.errors import VfmbenchError

DEFAULT_SHIFTS = ["color_easy", "color_hard", "video_easy", "video_hard", "distractor"]
DEFAULT_ENCODERS = ["imagenet_efficientnet_lite0", "random_resnet18"]


def render(task: str, shift: str, seeds: list[int], resolution: int, steps: int) -> np.ndarray:
    """The first frame (after `steps` expert steps) of each seed under `shift`: uint8 ``[S, R, R, 3]``."""
    frames = []
    with make_task(task, resolution=resolution, shift=shift) as t:
        for seed in seeds:
            obs = t.reset(seed)
            for _ in range(steps):
                obs = t.step(t.expert_action()).observation
            frames.append(obs["pixels"])
    return np.stack(frames)


def cosine(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).tolist()


def summary(values: list[float]) -> dict[str, Any]:
    return {"mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4),
            "max": round(float(np.max(values)), 4), "per_seed": [round(v, 4) for v in values]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="fetch_push")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    p.add_argument("--shifts", nargs="+", default=DEFAULT_SHIFTS)
    p.add_argument("--encoders", nargs="+", default=DEFAULT_ENCODERS)
    p.add_argument("--resolution", type=int, default=84)
    p.add_argument("--steps", type=int, default=0, help="expert steps before the frame")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    if len(args.seeds) < 2:
        p.error("give at least two seeds (other_seed compares neighbouring seeds)")

    t0 = time.perf_counter()
    clean = render(args.task, "none", args.seeds, args.resolution, args.steps)
    shifted = {s: render(args.task, s, args.seeds, args.resolution, args.steps) for s in args.shifts}
    render_s = time.perf_counter() - t0

    results: dict[str, Any] = {}
    for name in args.encoders:
        try:
            enc = create_encoder(name)
        except VfmbenchError as exc:  # weights not installed: say so, measure the others
            results[name] = {"skipped": str(exc).splitlines()[0]}
            continue
        t1 = time.perf_counter()
        with torch.inference_mode():
            z_clean = enc(torch.from_numpy(clean))
            row: dict[str, Any] = {"label": encoder_label(enc), "embed_dim": enc.embed_dim}
            row["other_seed"] = summary(cosine(z_clean[:-1], z_clean[1:]))
            for shift, frames in shifted.items():
                row[shift] = summary(cosine(z_clean, enc(torch.from_numpy(frames))))
                # how much further the shift moves a frame than a new seed does (1 - cos, as ratios)
                moved = (1 - row[shift]["mean"]) / max(1 - row["other_seed"]["mean"], 1e-12)
                row[shift]["vs_other_seed"] = round(moved, 2)
        row["embed_s"] = round(time.perf_counter() - t1, 2)
        results[name] = row

    doc = {
        "task": args.task, "resolution": args.resolution, "seeds": args.seeds, "steps": args.steps,
        "metric": "cosine similarity of embed(clean frame) and embed(same seed under the shift)",
        "render_s": round(render_s, 2), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "encoders": results,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
