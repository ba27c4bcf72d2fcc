"""The encoder contract: batched uint8 images in, ``[B, D]`` embeddings out.

Every encoder owns its preprocessing (batched torch ops, so it runs wherever the encoder
runs), reports ``embed_dim`` and whether it trains, exposes spatial features
(``[B, C, h, w]`` feature maps or patch-token grids) for masking and saliency, and says what
identifies its outputs for the embedding cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import contextlib
import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How raw uint8 frames become model input.

    ``scale`` multiplies the [0, 255] input (1/255 for most models, 1.0 for R3M/VIP which expect
    [0, 255]); then an optional resize of the shorter side to ``resize`` and centre crop to
    ``crop`` (or, with ``longest_side``, SAM-style resize of the longer side plus zero padding
    to a square); then ``(x - mean) / std``.
    """

    scale: float = 1.0 / 255.0
    resize: int | None = None
    crop: int | None = None
    longest_side: int | None = None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    interpolation: str = "bilinear"
    antialias: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_nchw_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` (or ``[B, 3, H, W]``) -> float32 ``[B, 3, H, W]`` in [0, 255]."""
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images [B, H, W, 3], got shape {tuple(images.shape)}")
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    return images.float()


def _resize(x: torch.Tensor, size: tuple[int, int], p: Preprocessing) -> torch.Tensor:
    """Interpolate ``[B, 3, H, W]`` to `size`, clamped to the input's range as uint8 image resizes are
    (bicubic overshoots; bilinear never leaves the range, so the clamp changes nothing there)."""
    x = F.interpolate(x, size=size, mode=p.interpolation, antialias=p.antialias, align_corners=False)
    return x.clamp_(0.0, 255.0 * p.scale)


def apply_preprocessing(images: torch.Tensor, p: Preprocessing) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> normalised float ``[B, 3, h, w]``, batched on the images' device."""
    x = to_nchw_float(images) * p.scale
    if p.longest_side is not None:
        h, w = x.shape[-2:]
        s = p.longest_side / max(h, w)
        nh, nw = int(h * s + 0.5), int(w * s + 0.5)
        x = _resize(x, (nh, nw), p)
    elif p.resize is not None:
        h, w = x.shape[-2:]
        # torchvision's rule: the longer side becomes int(resize * long / short), truncated
        nh, nw = (p.resize, int(p.resize * w / h)) if h <= w else (int(p.resize * h / w), p.resize)
        if (nh, nw) != (h, w):
            x = _resize(x, (nh, nw), p)
    if p.crop is not None:
        h, w = x.shape[-2:]
        top, left = (h - p.crop) // 2, (w - p.crop) // 2
        x = x[..., top : top + p.crop, left : left + p.crop]
    mean = torch.tensor(p.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(p.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    x = (x - mean) / std
    if p.longest_side is not None:  # pad bottom/right to a square after normalising (SAM)
        h, w = x.shape[-2:]
        x = F.pad(x, (0, p.longest_side - w, 0, p.longest_side - h))
    return x


def view_preprocessing(size: int, crop_pct: float, interpolation: str, mean: tuple[float, float, float],
                       std: tuple[float, float, float], scale: float = 1.0 / 255.0) -> Preprocessing:
    """Resize the shorter side to ``floor(size / crop_pct)`` and centre-crop ``size`` (as torchvision
    and timm evaluation transforms do; crop_pct 0.875 is 256 -> 224, 1.0 keeps the whole frame)."""
    return Preprocessing(scale=scale, resize=math.floor(size / crop_pct), crop=size, mean=mean, std=std,
                         interpolation=interpolation)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw random initialisations inside the block from `seed`, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class EncoderInfo:
    """What the registry and tables show about an encoder instance."""

    name: str
    family: str
    embed_dim: int
    trainable: bool
    pretrained: bool
    input_key: str = "pixels"
    extra: dict[str, Any] = field(default_factory=dict)


class Encoder(nn.Module):
    """Base class. Subclasses implement `forward_features` (preprocessed input -> spatial
    features) and `pool` (spatial features -> ``[B, D]``), or override `embed` directly."""

    name: str = "encoder"
    family: str = "base"
    embed_dim: int = 0
    trainable: bool = False
    pretrained: bool = False
    input_key: str = "pixels"  # which observation the encoder reads: "pixels" or "state"
    preprocessing: Preprocessing = Preprocessing()
    weights_id: str = "none"  # checksum of the weights file, or "random:seed=N"

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` -> model input ``[B, 3, h, w]``."""
        return apply_preprocessing(images, self.preprocessing)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed input -> spatial features ``[B, C, h, w]``."""
        raise NotImplementedError

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Spatial features -> ``[B, D]``."""
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed input -> ``[B, D]``."""
        return self.pool(self.forward_features(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images ``[B, H, W, 3]`` -> embeddings ``[B, D]``."""
        return self.embed(self.preprocess(images))

    def spatial_features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images ``[B, H, W, 3]`` -> spatial features ``[B, C, h, w]``."""
        return self.forward_features(self.preprocess(images))

    def compile_model(self, **kwargs: Any) -> "Encoder":
        """``torch.compile`` `preprocess`, `embed` and `forward_features` in place (weights and
        state-dict keys are untouched). Returns self."""
        self.preprocess = torch.compile(self.preprocess, **kwargs)  # type: ignore[method-assign]
        self.embed = torch.compile(self.embed, **kwargs)  # type: ignore[method-assign]
        self.forward_features = torch.compile(self.forward_features, **kwargs)  # type: ignore[method-assign]
        return self

    def info(self) -> EncoderInfo:
        return EncoderInfo(self.name, self.family, self.embed_dim, self.trainable, self.pretrained, self.input_key)

    def cache_identity(self) -> dict[str, Any]:
        """Everything that determines this encoder's embeddings of a given image."""
        return {
            "encoder": self.name,
            "weights": self.weights_id,
            "preprocessing": self.preprocessing.to_dict(),
            "embed_dim": self.embed_dim,
            "options": self.options(),
        }

    def options(self) -> dict[str, Any]:
        """Constructor options that change the embedding (e.g. pooling); part of the cache key."""
        return {}

    @property
    def label(self) -> str:
        """The name shown in tables: random-weight variants of pretrained models are marked."""
        return self.name
