"""Encoders that need no pretrained weights: `state`, `e2e_cnn`, `e2e_resnet18`, `random_resnet18`."""

from __future__ import annotations

import torch

from vfmbench.encoders._registry import EncoderSpec, register_encoder
from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder, Preprocessing
from vfmbench.encoders.cnn import SmallCNN
from vfmbench.encoders.resnet import ResNetEncoder, SpatialSoftmaxResNet
from vfmbench.encoders.state import StateEncoder

RANDOM_SEED = 0  # random baselines use fixed weights so that results and caches are reproducible


def _state(pretrained: bool = False, input_dim: int = 0) -> Encoder:
    return StateEncoder(input_dim)


def _e2e_cnn(pretrained: bool = False, **kw) -> Encoder:
    return SmallCNN(**kw)


def _e2e_resnet18(pretrained: bool = False, **kw) -> Encoder:
    return SpatialSoftmaxResNet("e2e_resnet18", depth=18, **kw)


def _random_resnet18(pretrained: bool = False, seed: int = RANDOM_SEED) -> Encoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = ResNetEncoder(
            "random_resnet18", 18, Preprocessing(scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD),
            weights_id=f"random:seed={seed}",
        )
    return enc.eval().requires_grad_(False)


register_encoder(EncoderSpec("state", "state", "privileged task state (upper bound; not an image encoder)",
                             _state, embed_dim=None, input_key="state"))
register_encoder(EncoderSpec("e2e_cnn", "cnn", "small conv net + spatial softmax, trained jointly (CPU-friendly)",
                             _e2e_cnn, embed_dim=64, trainable=True))
register_encoder(EncoderSpec("e2e_resnet18", "resnet",
                             "ResNet-18, GroupNorm, spatial softmax, trained jointly (paper 001 §III-B2)",
                             _e2e_resnet18, embed_dim=64, trainable=True, paper="001"))
register_encoder(EncoderSpec("random_resnet18", "resnet",
                             "ResNet-18 with frozen random weights (seed 0) at the task's resolution",
                             _random_resnet18, embed_dim=512))
