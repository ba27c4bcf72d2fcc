"""``vfmbench mask show``: one frame through SAM-G, as the paper's Figures 4 and 6: the frame,
the similarity maps (SAM, DINOv2 and their average, of the union's type-1 point feature), the
prompts of each round (positive green, negative red, box yellow), the mask and the masked frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def show(segmenter: object, frame: np.ndarray, out: str | Path, truth: np.ndarray | None = None,
         title: str = "") -> Path:
    """Write the figure of `frame` (uint8 ``[H, W, 3]``) through a SAM-G `segmenter` (a
    `SamGSegmenter`) to `out` (PNG); `truth` adds the ground-truth mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from vfmbench.masking.samg import similarity

    model = segmenter.model  # type: ignore[attr-defined]
    x = torch.from_numpy(frame.copy())[None].to(model.sam.device)
    hw = frame.shape[:2]
    seg = model.segment(x, trace=True)
    emb, dino = model.features(x)
    maps = [("similarity (SAM)", similarity(model.pf_sam.type1[:1], emb, model.sam, hw)[0, 0])]
    if dino is not None:
        maps.append(("similarity (DINOv2)", similarity(model.pf_dino.type1[:1], dino, model.sam, hw)[0, 0]))
    maps.append(("similarity (average)", seg.sim1[0, 0]))
    panels = 1 + len(maps) + len(seg.rounds) + 2 + (truth is not None)
    fig, axes = plt.subplots(1, panels, figsize=(2.2 * panels, 2.6))
    axes[0].imshow(frame)
    axes[0].set_title("frame", fontsize=8)
    k = 1
    for name, m in maps:
        axes[k].imshow(m.float().cpu().numpy(), cmap="jet")
        axes[k].set_title(name, fontsize=8)
        k += 1
    for r, (p, mask) in enumerate(zip(seg.rounds, seg.round_masks)):
        ax = axes[k]
        ax.imshow(frame)
        ax.imshow(mask[0].cpu().numpy(), alpha=0.45, cmap="Blues")
        pts, lab = p.points[0].cpu().numpy(), p.labels[0].cpu().numpy()
        ax.scatter(pts[lab == 1, 0], pts[lab == 1, 1], c="lime", s=18, marker="*")
        ax.scatter(pts[lab == 0, 0], pts[lab == 0, 1], c="red", s=18, marker="x")
        if p.box is not None:
            x0, y0, x1, y1 = p.box[0].cpu().numpy()
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1))
        ax.set_title(f"round {r + 1}: prompts, mask", fontsize=8)
        k += 1
    mask = seg.masks[0].cpu().numpy()
    axes[k].imshow(mask, cmap="gray")
    axes[k].set_title("mask", fontsize=8)
    axes[k + 1].imshow(np.where(mask[..., None], frame, 0))
    axes[k + 1].set_title("masked frame", fontsize=8)
    if truth is not None:
        axes[k + 2].imshow(truth, cmap="gray")
        axes[k + 2].set_title("ground truth", fontsize=8)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
