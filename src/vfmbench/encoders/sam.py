"""Segment Anything's image encoder (ViT-B/L/H + convolutional neck), via `transformers`.

The embedding is taken where paper 000 takes it: the output of the neck, ``[B, 256, 64, 64]``
for a 1024 x 1024 input (these are `spatial_features`). Pooled by default with ``grid6``
(adaptive average pooling to 256 x 6 x 6, flattened channel-major) to the paper's 9216
dimensions; ``mean``/``max``/``gridN`` are options. Preprocessing follows segment-anything:
resize the longer side to 1024 (bilinear), normalise with its pixel mean/std on [0, 255], pad
bottom/right with zeros to 1024 x 1024.

Weights: the official ``sam_vit_*.pth`` (the whole model's state dict at the top level; only
``image_encoder.*`` is read), segment-anything's ``ImageEncoderViT`` state dict alone
(``patch_embed.*``, ``blocks.*``, ``neck.*``), or a hub folder of ``SamModel`` (e.g.
facebook/sam-vit-base). Files in other layouts are refused, naming what they look like.

Attention (option ``attention``, `vfmbench.encoders.sam_attention`): ``"concat"`` (the default)
folds the decomposed relative-position bias into the query-key product, so that SDPA's fused
kernels run with no ``[N, N]`` bias; ``"eager"`` keeps `transformers`' own modules (the
reference); ``"auto"`` runs
the global-attention layers with FlexAttention and a relative-position score modifier when the
input is on CUDA (no ``[N, N]`` bias materialised; flex_attention compiled once per process) and
`transformers`' computation elsewhere; ``"flex"`` forces the flex path on any device.
Measured on an H200 (docs/encoders.md, bf16, compiled): concat 298 images/s, eager 259, flex 72
(its score modifier gathers the bias per score). Windowed layers keep `transformers`'
module in every mode. The modes compute the same function (they differ by rounding), share
parameters and state-dict keys, and are not part of the embedding cache key.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any

import torch

from vfmbench.encoders._hf import hub_state_dict, transformers
from vfmbench.encoders._pooling import spatial_pooling
from vfmbench.encoders.base import Encoder, Preprocessing, seeded
from vfmbench.encoders.sam_attention import DEFAULT_ATTENTION, check_attention_mode, set_sam_attention
from vfmbench.weights import (
    StateDict,
    WeightsLocation,
    load_checkpoint_into,
    rename,
    strip_prefix,
    not_the_format,
)

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamArch:
    """Image-encoder sizes (segment-anything's ``build_sam_vit_*``)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    out_channels: int = 256

    def config(self) -> Any:
        return transformers().SamVisionConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            global_attn_indexes=list(self.global_attn_indexes),
            image_size=self.image_size,
            patch_size=self.patch_size,
            window_size=self.window_size,
            output_channels=self.out_channels,
            mlp_dim=4 * self.hidden_size,
            layer_norm_eps=1e-6,
            qkv_bias=True,
            use_abs_pos=True,
            use_rel_pos=True,
            initializer_range=0.02,  # transformers' default (1e-10) would make random baselines near-constant
        )

    def tiny(self) -> "SamArch":
        """Test-only toy size of the same code path: width 48, 2 layers (the second global), 64 x 64
        input (a 4 x 4 grid, windows of 2), 16 output channels; the head count is kept, so a wrong
        head count shows at toy size too (48 is divisible by 12 and 16)."""
        return replace(self, hidden_size=48, num_layers=2, global_attn_indexes=(1,), image_size=64, window_size=2,
                       out_channels=16)


# segment-anything's build_sam.py (build_sam_vit_b/l/h): encoder_embed_dim, encoder_depth,
# encoder_num_heads, encoder_global_attn_indexes; image_size 1024, vit_patch_size 16, window_size 14,
# prompt_embed_dim 256, mlp_ratio 4, LayerNorm eps 1e-6, qkv_bias and use_rel_pos True.
SAM_ARCHS: dict[str, SamArch] = {
    "vit_b": SamArch(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArch(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArch(1280, 32, 16, (7, 15, 23, 31)),
}

# segment-anything image-encoder keys -> transformers SamVisionEncoder keys
_SAM_RULES = [
    (r"^patch_embed\.proj\.", "patch_embed.projection."),
    (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.", r"layers.\1."),
    (r"^neck\.0\.", "neck.conv1."),
    (r"^neck\.1\.", "neck.layer_norm1."),
    (r"^neck\.2\.", "neck.conv2."),
    (r"^neck\.3\.", "neck.layer_norm2."),
]


_SAM_LAYOUT = ("a segment-anything checkpoint (sam_vit_*.pth: image_encoder.*, prompt_encoder.*, mask_decoder.* "
               "at the top level) or its image encoder alone (patch_embed.*, blocks.*, neck.*)")


def convert_segment_anything(checkpoint: dict[str, Any]) -> StateDict:
    """segment-anything state dict (whole SAM, or the image encoder alone) -> SamVisionEncoder keys."""
    if isinstance(checkpoint.get("image_encoder.patch_embed.proj.weight"), torch.Tensor):
        encoder = strip_prefix(checkpoint, "image_encoder.")
    elif isinstance(checkpoint.get("patch_embed.proj.weight"), torch.Tensor) and "neck.0.weight" in checkpoint:
        encoder = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    else:
        raise not_the_format(_SAM_LAYOUT, checkpoint)
    return rename(encoder, _SAM_RULES)


class SamEncoder(Encoder):
    """SAM image encoder. ``forward_features``: ``[B, 3, 1024, 1024]`` -> ``[B, 256, 64, 64]``;
    ``pool``: -> ``[B, D]`` (D = 9216 for the default ``grid6``). ``attention``: "concat" (default), "eager",
    "auto" or "flex" (the module's docstring)."""

    family = "sam"

    def __init__(self, name: str, arch: SamArch, *, pooling: str = "grid6", seed: int = 0,
                 weights: WeightsLocation | None = None, attention: str = DEFAULT_ATTENTION):
        super().__init__()
        self.attention = check_attention_mode(attention)
        modeling_sam = importlib.import_module(transformers().__name__ + ".models.sam.modeling_sam")
        self.name, self.arch, self.pooling = name, arch, pooling
        self._pool = spatial_pooling(pooling)
        self.preprocessing = Preprocessing(
            scale=1.0, longest_side=arch.image_size, mean=SAM_PIXEL_MEAN, std=SAM_PIXEL_STD, interpolation="bilinear"
        )
        with seeded(seed):
            self.model = modeling_sam.SamVisionEncoder(arch.config())
        self.embed_dim = self._pool.dim(arch.out_channels)
        if weights is None:
            self.pretrained, self.weights_id = False, f"random:seed={seed}"
        else:
            load_checkpoint_into(
                self.model, weights, convert_segment_anything,
                hub=lambda p: hub_state_dict("SamModel", p, self.model.config, submodule="vision_encoder",
                                             model_types=("sam",)),
            )
            self.pretrained, self.weights_id = True, weights.sha256
        set_sam_attention(self.model, attention)
        self.eval().requires_grad_(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).last_hidden_state

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self._pool(features)

    def options(self) -> dict[str, Any]:
        return {"pooling": self.pooling}  # not `attention`: an implementation of the same function


def build_sam(name: str, weights: WeightsLocation | None, *, arch_name: str, pooling: str = "grid6",
              seed: int = 0, tiny: bool = False, attention: str = DEFAULT_ATTENTION) -> SamEncoder:
    """A SAM encoder of size `arch_name` ("vit_b", "vit_l", "vit_h"); ``tiny`` is for tests;
    ``attention`` "auto", "eager", "flex" or "concat" (`vfmbench.encoders.sam_attention`)."""
    arch = SAM_ARCHS[arch_name]
    return SamEncoder(name, arch.tiny() if tiny else arch, pooling=pooling, seed=seed, weights=weights,
                      attention=attention)
