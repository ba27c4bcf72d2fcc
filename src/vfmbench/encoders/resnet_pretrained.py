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

Checkpoints read, each style only its own layout (a file of another model is an error that says
what the file looks like; R3M and VIP load their files the same way):

- "imagenet": a torchvision state dict, keys ``conv1.weight`` ... ``fc.*`` at the top level, no
  wrapper and no prefix (the classifier ``fc.*`` is dropped);
- "r3m": R3M's ``model.pt``, ``{"r3m": {"module.convnet.*": ...}}`` (``torch.nn.DataParallel`` of
  R3M; its language head ``lang_enc``/``lang_rew`` is dropped as R3M's own loader does; its ``fc``
  is the identity, so the file has no ``fc.*``);
- "vip": VIP's ``model.pt``, ``{"vip": {"module.convnet.*": ...}}`` including ``fc`` (2048 -> 1024).
"""

from __future__ import annotations

from typing import Any

import torch

from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, seeded, view_preprocessing
from vfmbench.encoders.resnet import ResNetEncoder
from vfmbench.weights import StateDict, WeightsLocation, load_checkpoint_into, not_the_format

# style -> (the wrapper key holding the state dict, the key prefix inside it, what the file is)
LAYOUTS: dict[str, tuple[str | None, str, str]] = {
    "imagenet": (None, "", "a torchvision ResNet state dict (conv1.weight ... fc.* at the top level)"),
    "r3m": ("r3m", "module.convnet.", "an R3M checkpoint ({'r3m': {'module.convnet.*': ...}}, R3M's model.pt)"),
    "vip": ("vip", "module.convnet.", "a VIP checkpoint ({'vip': {'module.convnet.*': ...}}, VIP's model.pt)"),
}
_R3M_LANGUAGE_HEAD = ("lang_enc", "lang_rew")  # dropped by R3M's own remove_language_head


def convert_resnet(checkpoint: dict[str, Any], style: str) -> StateDict:
    """An official checkpoint of `style` ("imagenet", "r3m", "vip") -> ResNetTrunk keys. Entries that
    are not the ResNet's are passed on unchanged (so a strict load names them as unexpected)."""
    wrapper, prefix, expected = LAYOUTS[style]
    state = checkpoint.get(wrapper) if wrapper else checkpoint
    if not isinstance(state, dict) or not isinstance(state.get(prefix + "conv1.weight"), torch.Tensor):
        raise not_the_format(expected, checkpoint)
    if wrapper is None and any(isinstance(v, dict) for v in state.values()):
        raise not_the_format(expected, checkpoint)
    out: StateDict = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if style == "r3m" and any(part in key for part in _R3M_LANGUAGE_HEAD):
            continue
        key = key[len(prefix):] if key.startswith(prefix) else key
        if style == "imagenet" and key.startswith("fc."):
            continue  # the ImageNet classifier
        out[key] = value
    return out


class PretrainedResNet(ResNetEncoder):
    """ResNet encoder; with ``normalize_inside`` it takes [0, 255] input and normalises it itself
    (R3M/VIP). ``forward_features``: ``[B, 3, 224, 224]`` -> ``[B, C, 7, 7]``."""

    def __init__(self, name: str, depth: int, preprocessing: Preprocessing, *, style: str,
                 fc_out: int | None, seed: int = 0, weights: WeightsLocation | None = None):
        with seeded(seed):
            super().__init__(name, depth, preprocessing, fc_out=fc_out)
        self.style = style
        self.normalize_inside = style != "imagenet"
        self.register_buffer("input_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights is None:
            self.pretrained, self.weights_id = False, f"random:seed={seed}"
        else:
            load_checkpoint_into(self.trunk, weights, lambda ckpt: convert_resnet(ckpt, style))
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
    return PretrainedResNet(name, depth, pre, style=style, fc_out=fc_out, seed=seed, weights=weights)
