"""Pretrained ResNets: ImageNet (torchvision), R3M and VIP, on vfmbench's torchvision-compatible ResNet.

- ImageNet: torchvision's eval transform (resize 256, centre crop 224, bilinear, ImageNet
  mean/std); embedding = global average pool of layer4 (the classifier is dropped): 512 for
  ResNet-18, 2048 for ResNet-50.
- R3M: the model takes [0, 255] input and itself divides by 255 and normalises with ImageNet
  statistics (R3M's ``forward``); its official usage resizes to 256 and centre-crops 224 first.
  ``fc`` is the identity, so the embedding is the 2048-d pool (ResNet-50) or 512-d (18/34).
- VIP: like R3M, but its ``forward`` always resizes to 256 and centre-crops 224 (its shape check
  compares a ``torch.Size`` with a list, which never matches) and ``fc`` is Linear(2048, 1024).

So for R3M and VIP ``preprocess`` returns [0, 255] pixels at 224 x 224 (what the official module
receives), and the normalisation happens in ``forward_features``. Spatial features: layer4.

Checkpoints read: torchvision state dicts, R3M ``model.pt`` (``{"r3m": {"module.convnet.*": ...}}``;
language-head keys ignored) and VIP ``model.pt`` (``{"vip": {"module.convnet.*": ...}}``).
"""

from __future__ import annotations

from typing import Any

import torch

from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, seeded, view_preprocessing
from vfmbench.encoders.resnet import ResNetEncoder
from vfmbench.weights import StateDict, WeightsLocation, load_checkpoint_into, unwrap

# Prefixes under which the official checkpoints keep the torchvision ResNet, most specific first.
_PREFIXES = ("module.convnet.", "convnet.", "module.")


def convert_torchvision(checkpoint: dict[str, Any], keep_fc: bool) -> StateDict:
    """torchvision / R3M / VIP checkpoint -> ResNetTrunk keys (``fc.*`` dropped unless `keep_fc`)."""
    state = {k: v for k, v in unwrap(checkpoint, ("r3m", "vip", "state_dict", "model")).items()
             if isinstance(v, torch.Tensor)}
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    return {k: v for k, v in state.items() if keep_fc or not k.startswith("fc.")}


class PretrainedResNet(ResNetEncoder):
    """ResNet encoder; with ``normalize_inside`` it takes [0, 255] input and normalises it itself
    (R3M/VIP). ``forward_features``: ``[B, 3, 224, 224]`` -> ``[B, C, 7, 7]``."""

    def __init__(self, name: str, depth: int, preprocessing: Preprocessing, *, normalize_inside: bool,
                 fc_out: int | None, seed: int = 0, weights: WeightsLocation | None = None):
        with seeded(seed):
            super().__init__(name, depth, preprocessing, fc_out=fc_out)
        self.normalize_inside = normalize_inside
        self.register_buffer("input_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights is None:
            self.pretrained, self.weights_id = False, f"random:seed={seed}"
        else:
            load_checkpoint_into(self.trunk, weights, lambda ckpt: convert_torchvision(ckpt, keep_fc=fc_out is not None))
            self.pretrained, self.weights_id = True, weights.sha256
        self.eval().requires_grad_(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_inside:
            x = (x / 255.0 - self.input_mean) / self.input_std
        return self.trunk(x)


def build_resnet(name: str, weights: WeightsLocation | None, *, depth: int, style: str, fc_out: int | None = None,
                 seed: int = 0, tiny: bool = False, full_frame: bool = False) -> PretrainedResNet:
    """style "imagenet" (normalised input) or "r3m"/"vip" ([0, 255] input normalised inside).
    ``tiny`` shrinks the input to 32 x 32 for tests (same weights layout); ``full_frame`` resizes the
    whole frame to the input size instead of resize-256-crop-224 (not for VIP, whose own forward
    always crops)."""
    size = 32 if tiny else 224
    crop_pct = 1.0 if full_frame and style != "vip" else 0.875
    if style == "imagenet":
        pre = view_preprocessing(size, crop_pct, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
    else:
        pre = view_preprocessing(size, crop_pct, "bilinear", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), scale=1.0)
    return PretrainedResNet(name, depth, pre, normalize_inside=style != "imagenet", fc_out=fc_out, seed=seed,
                            weights=weights)
