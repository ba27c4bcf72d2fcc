"""PerSAM's one-shot adaptation (Zhang et al., 2023; paper 002 §4.2): two mixing weights of SAM's
three multimask logits, fitted on the reference frame and its mask, all else frozen.

    M = w1 * M1 + w2 * M2 + (1 - w1 - w2) * M3

Loss: dice + sigmoid focal (alpha 0.25, gamma 2) of the mixed logits against the mask, as
PerSAM's and SAM-G's ``calculate_dice_loss`` / ``calculate_sigmoid_focal_loss``; AdamW (lr 1e-3,
eps 1e-4) with cosine annealing over the steps, from w1 = w2 = 1/3 (PerSAM's ``Mask_Weights``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mix(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` logits mixed by the three weights ``[3]`` -> ``[..., H, W]``."""
    return (logits * weights.to(logits.dtype).view(3, 1, 1)).sum(-3)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft dice of ``sigmoid(logits)`` ``[S, H, W]`` against the 0/1 `target`, averaged over S."""
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (RetinaNet), averaged over pixels and S."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * ce * (1 - p_t) ** gamma).mean()


def fit_mixing_weights(logits: torch.Tensor, target: torch.Tensor, steps: int = 1000, lr: float = 1e-3) -> torch.Tensor:
    """Fit (w1, w2) on multimask logits ``[S, 3, H, W]`` (S decodings of the reference frame) against
    its mask ``[H, W]`` (bool or 0/1). Returns the three weights ``[3]`` = (w1, w2, 1 - w1 - w2).
    Works under ``torch.no_grad`` and ``torch.inference_mode`` too (segmenters are built where
    environments are, e.g. inside an evaluation's inference mode): the fit runs with gradients on
    copies of the inputs made outside inference mode."""
    if logits.ndim != 4 or logits.shape[1] != 3:
        raise ValueError(f"expected multimask logits [S, 3, H, W], got {tuple(logits.shape)}")
    with torch.inference_mode(False), torch.enable_grad():
        logits = logits.detach().float().clone()  # an inference tensor cannot be saved for backward
        target = target.to(logits.device, torch.float32).clone().expand(logits.shape[0], *target.shape[-2:])
        return _fit(logits, target, steps, lr)


def _fit(logits: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    w = torch.full((2,), 1.0 / 3.0, device=logits.device, requires_grad=True)
    opt = torch.optim.AdamW([w], lr=lr, eps=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        mixed = mix(logits, torch.cat([w, 1 - w.sum(0, keepdim=True)]))
        loss = dice_loss(mixed, target) + focal_loss(mixed, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    w = w.detach()
    return torch.cat([w, 1 - w.sum(0, keepdim=True)])
