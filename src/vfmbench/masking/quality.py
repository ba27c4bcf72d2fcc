"""Mask quality of a segmenter against the ground truth, per task and shift.

IoU = |P ∩ T| / |P ∪ T| (1 when both are empty). Boundary F-score (the DAVIS contour measure):
the boundaries (mask minus its 3x3 erosion) matched within `tolerance` pixels; precision = share of
predicted boundary pixels within tolerance of the true boundary, recall the converse,
F = 2PR / (P + R) (1 when both boundaries are empty, 0 when one is).
Frames: held-out episodes (seeds from 1000) of the task's scripted expert (seeded random actions
for tasks without one), every `every`-th step, under each shift.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from vfmbench.utils.errors import ConfigError

EVAL_SEED = 1000


def iou(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame IoU of bool masks ``[B, H, W]`` -> ``[B]``."""
    inter = (pred & truth).sum((1, 2))
    union = (pred | truth).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3)), border_value=0)


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: int = 2) -> np.ndarray:
    """Per-frame boundary F-score of bool masks ``[B, H, W]`` -> ``[B]``."""
    disk = np.ones((2 * tolerance + 1, 2 * tolerance + 1), bool)
    out = []
    for p, t in zip(pred, truth):
        bp, bt = _boundary(p), _boundary(t)
        if not bp.any() and not bt.any():
            out.append(1.0)
            continue
        if not bp.any() or not bt.any():
            out.append(0.0)
            continue
        precision = (bp & ndimage.binary_dilation(bt, disk)).sum() / bp.sum()
        recall = (bt & ndimage.binary_dilation(bp, disk)).sum() / bt.sum()
        out.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return np.asarray(out)


@dataclass
class QualityRow:
    """One shift: mean and std of IoU and boundary F over `frames` frames, segmenting time."""

    shift: str
    iou: float
    iou_std: float
    boundary_f: float
    frames: int
    seconds: float


@dataclass
class QualityReport:
    """``vfmbench mask eval`` output (schema ``vfmbench.mask_quality/1``)."""

    task: str
    segmenter: str
    episodes: int
    every: int
    options: dict[str, Any]
    rows: list[QualityRow] = field(default_factory=list)
    schema: str = "vfmbench.mask_quality/1"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def episode_frames(task: str, shift: str, episodes: int, every: int, seed: int = EVAL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 ``[N, H, W, 3]`` and their ground-truth masks ``[N, H, W]`` from `episodes`
    episodes of `task` under `shift`, every `every`-th step."""
    from vfmbench.tasks import get_task_spec, make_task

    if every < 1 or episodes < 1:
        raise ConfigError(f"episodes and every must be at least 1, got {episodes} and {every}")
    expert = get_task_spec(task).expert
    frames, masks = [], []
    with make_task(task, {"shift": shift, "masks": True}) as env:
        for ep in range(episodes):
            obs = env.reset(seed + ep)
            rng = np.random.default_rng(seed + ep)
            for t in range(env.max_episode_steps):
                if t % every == 0:
                    frames.append(obs["pixels"][..., :3])
                    masks.append(obs["mask"])
                action = env.expert_action() if expert else rng.uniform(-1, 1, env.action_dim).astype(np.float32)
                step = env.step(action)
                obs = step.observation
                if step.done:
                    break
    return np.stack(frames), np.stack(masks)


def evaluate_quality(task: str, segmenter: str, options: dict[str, Any] | None = None,
                     shifts: list[str] | None = None, episodes: int = 5, every: int = 10,
                     log: Any = None) -> QualityReport:
    """IoU and boundary F of `segmenter` (built with `options`, `SegmenterConfig` fields) on `task`
    under each of `shifts` (default: none)."""
    from vfmbench.masking.segmenters import build_segmenter

    seg = build_segmenter(segmenter, options, task=task)
    report = QualityReport(task, segmenter, episodes, every, dict(options or {}))
    for shift in shifts or ["none"]:
        frames, truth = episode_frames(task, shift, episodes, every)
        t0 = time.time()
        pred = seg.segment(frames, truth)
        dt = time.time() - t0
        i, f = iou(pred, truth), boundary_f(pred, truth)
        report.rows.append(QualityRow(shift, round(float(i.mean()), 4), round(float(i.std()), 4),
                                      round(float(f.mean()), 4), len(frames), round(dt, 2)))
        if log:
            log(f"[mask eval] {task} {shift}: IoU {i.mean():.3f}, boundary F {f.mean():.3f} ({len(frames)} frames)")
    return report
