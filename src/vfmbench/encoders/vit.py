"""ViT families via `transformers`: DINOv2 (with and without registers), CLIP, MAE and MVP.

Where the embedding is taken (paper 000, Appendix A.1):

- DINOv2: the CLS token after the final LayerNorm (``x_norm_clstoken``), 768 for ViT-B/14.
- CLIP: the image embedding, i.e. the CLS token after ``ln_post`` projected by ``proj`` (512 for
  ViT-B/16); ``cls`` gives the unprojected token instead.
- MAE / MVP: the CLS token after the encoder's final LayerNorm ("the normalization layer that
  comes after the attention blocks"); MVP's own encoder returns exactly this (``norm(x[:, 0])``).
  ``mean`` (average of the normalised patch tokens) is the alternative.

`spatial_features` are the normalised patch tokens as a grid ``[B, C, h, w]`` (CLIP's patch tokens
pass through ``ln_post`` too). Poolings: ``cls``, ``proj`` (CLIP), or any spatial pooling of
that grid (``mean``, ``max``, ``gridN``).

Checkpoints read, each family only its own layouts (a file of another model is an error that
says what the file looks like): hub folders (``save_pretrained`` layout, of the family's model
type and architecture) for every family; the official DINOv2 ``*_pretrain.pth`` (timm-style keys
with ``ls1.gamma`` at the top level) or a DINOv2 training checkpoint (``{"teacher": {"backbone.*"}}``);
OpenAI's CLIP ``.pt`` (TorchScript, read without running it) and open_clip state dicts (``visual.*``
keys, or ``{"state_dict": {"module.visual.*"}}`` from open_clip training); MAE / MVP ``.pth`` files
(timm keys under ``"model"``; MAE's decoder and mask token ignored).

DINOv2 interpolates its position embeddings (trained at 518 x 518, a 37 x 37 grid) to the input's
grid as the official code does, which differs between the releases: without registers with
``interpolate_offset=0.1`` (the interpolation is given the scale factor (grid + 0.1) / 37) and no
antialiasing, with registers by output size with antialiasing (dinov2/hub/backbones.py).
`transformers`' Dinov2Model interpolates by output size, so vfmbench installs the official rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F

from vfmbench.encoders._hf import hub_state_dict, transformers
from vfmbench.encoders._pooling import spatial_pooling
from vfmbench.encoders.base import Encoder, Preprocessing, seeded, view_preprocessing
from vfmbench.utils.errors import ConfigError
from vfmbench.weights import (
    StateDict,
    WeightsLocation,
    load_checkpoint_into,
    not_the_format,
    rename,
    strip_prefix,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ViTArch:
    """Transformer sizes. ``image_size`` is the model input (crop) size; ``pos_image_size`` the size
    the position embeddings were trained at when it differs (DINOv2: 518, interpolated at run time,
    with ``interpolate_offset`` and ``interpolate_antialias`` as the official code has them). The
    head count is in no tensor's shape: a wrong one loads without error, so each entry's numbers
    are checked against the official definitions in tests/test_encoder_zoo.py."""

    hidden_size: int
    num_layers: int
    num_heads: int
    patch_size: int
    image_size: int = 224
    pos_image_size: int | None = None
    num_registers: int = 0
    projection_dim: int | None = None
    mlp_ratio: int = 4
    interpolate_offset: float = 0.0
    interpolate_antialias: bool = False

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def tiny(self) -> "ViTArch":
        """Test-only toy size of the same family: width 48, 2 layers, a 2 x 2 patch grid, the same head
        count (48 is divisible by 6, 12 and 16, so a wrong head count shows at toy size too)."""
        return replace(
            self, hidden_size=48, num_layers=2, image_size=2 * self.patch_size,
            pos_image_size=3 * self.patch_size if self.pos_image_size else None,
            projection_dim=16 if self.projection_dim else None,
        )


@dataclass
class Tokens:
    """One forward pass: CLS token ``[B, D]`` and patch tokens ``[B, N, D]`` after the final norm,
    and CLIP's projected image embedding ``[B, P]`` (None for other families)."""

    cls: torch.Tensor
    patches: torch.Tensor
    projected: torch.Tensor | None = None


@dataclass(frozen=True)
class TokenPooling:
    fn: Callable[[Tokens], torch.Tensor]
    dim: Callable[[ViTArch], int]


def split_fused(state: StateDict, fused: str, parts: tuple[str, str, str]) -> StateDict:
    """Split fused ``.<fused>.weight/bias`` entries (q, k, v stacked on dim 0) into three entries
    (views of the file's tensor, so errors can name the file's key)."""
    out: StateDict = {}
    for key, value in state.items():
        token = f".{fused}."
        if token in key:
            for part, chunk in zip(parts, value.chunk(3, dim=0)):
                out[key.replace(token, f".{part}.")] = chunk
        else:
            out[key] = value
    return out


class ViTEncoder(Encoder):
    """A ViT whose embedding is a pooled token. Subclasses say which `transformers` class, its
    config, how an official checkpoint maps onto it, and how to read the tokens."""

    hf_class: ClassVar[str]
    token_poolings: ClassVar[dict[str, TokenPooling]] = {
        "cls": TokenPooling(lambda t: t.cls, lambda a: a.hidden_size),
    }

    def __init__(self, name: str, family: str, arch: ViTArch, preprocessing: Preprocessing, *, pooling: str,
                 seed: int = 0, weights: WeightsLocation | None = None):
        super().__init__()
        hf = transformers()
        self.name, self.family, self.arch, self.pooling = name, family, arch, pooling
        self.preprocessing = preprocessing
        if pooling in self.token_poolings:
            self.embed_dim = self.token_poolings[pooling].dim(arch)
        else:
            try:
                self.embed_dim = spatial_pooling(pooling).dim(arch.hidden_size)
            except ConfigError:
                valid = ", ".join(sorted(self.token_poolings))
                raise ConfigError(f"unknown pooling {pooling!r} for {name}; valid: {valid}, mean, max, gridN") from None
        with seeded(seed):
            self.model = getattr(hf, self.hf_class)(self.hf_config(arch))
        if weights is None:
            self.pretrained, self.weights_id = False, f"random:seed={seed}"
        else:
            load_checkpoint_into(self.model, weights, self.convert_official,
                                 hub=lambda p: hub_state_dict(self.hf_class, p, self.model.config,
                                                              model_types=self.hub_model_types))
            self.pretrained, self.weights_id = True, weights.sha256
        self.eval().requires_grad_(False)

    # --- per family
    hub_model_types: ClassVar[tuple[str, ...]] = ()  # config.json model_type of hub folders it reads

    def hf_config(self, arch: ViTArch) -> Any:
        raise NotImplementedError

    def convert_official(self, checkpoint: dict[str, Any]) -> StateDict:
        """Official checkpoint file content -> this model's state-dict keys."""
        raise NotImplementedError

    def tokens(self, x: torch.Tensor) -> Tokens:
        """Preprocessed ``[B, 3, S, S]`` -> normalised tokens."""
        raise NotImplementedError

    # --- shared
    def _grid(self, patches: torch.Tensor) -> torch.Tensor:
        b, n, c = patches.shape
        g = self.arch.grid
        return patches.transpose(1, 2).reshape(b, c, g, g)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> patch-token grid ``[B, D, S/p, S/p]``."""
        return self._grid(self.tokens(x).patches)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tokens(x)
        if self.pooling in self.token_poolings:
            return self.token_poolings[self.pooling].fn(t)
        return spatial_pooling(self.pooling)(self._grid(t.patches))

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        if self.pooling in self.token_poolings:
            raise ConfigError(f"pooling {self.pooling!r} needs the token sequence, not the patch grid; "
                              f"use embed() or forward()")
        return spatial_pooling(self.pooling)(features)

    def options(self) -> dict[str, Any]:
        return {"pooling": self.pooling}


# ----------------------------------------------------------------------------------------- DINOv2

_DINOV2_RULES = [
    (r"^cls_token$", "embeddings.cls_token"),
    (r"^mask_token$", "embeddings.mask_token"),
    (r"^pos_embed$", "embeddings.position_embeddings"),
    (r"^register_tokens$", "embeddings.register_tokens"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layer.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layer.\1.attention.qkv."),
    (r"^blocks\.(\d+)\.ls1\.gamma$", r"encoder.layer.\1.layer_scale1.lambda1"),
    (r"^blocks\.(\d+)\.ls2\.gamma$", r"encoder.layer.\1.layer_scale2.lambda1"),
    (r"^blocks\.(\d+)\.", r"encoder.layer.\1."),
    (r"^norm\.", "layernorm."),
]


def official_dinov2_pos_embed(embeddings: Any, tokens: torch.Tensor, height: int, width: int, *, patch_size: int,
                              offset: float, antialias: bool) -> torch.Tensor:
    """Position embeddings for a `height` x `width` input, interpolated as DINOv2's
    ``DinoVisionTransformer.interpolate_pos_encoding`` does (dinov2/models/vision_transformer.py):
    bicubic from the trained M x M grid, given the scale factor (grid + offset) / M when `offset`
    is set, else the output size; `antialias` as configured. `embeddings` is the `transformers`
    embeddings module (its ``position_embeddings``), `tokens` its [CLS, patches] sequence."""
    pos = embeddings.position_embeddings
    n, big_n = tokens.shape[1] - 1, pos.shape[1] - 1
    if n == big_n and height == width:
        return pos
    m = int(math.sqrt(big_n))
    h0, w0 = height // patch_size, width // patch_size
    grid = pos[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    how: dict[str, Any] = ({"scale_factor": ((h0 + offset) / m, (w0 + offset) / m)} if offset else {"size": (h0, w0)})
    grid = F.interpolate(grid, mode="bicubic", antialias=antialias, align_corners=False, **how)
    if tuple(grid.shape[-2:]) != (h0, w0):
        raise ValueError(f"position grid {tuple(grid.shape[-2:])} for a {h0} x {w0} patch grid")
    grid = grid.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
    return torch.cat((pos[:, :1].float(), grid), dim=1).to(pos.dtype)


_DINOV2_LAYOUT = ("a DINOv2 checkpoint (the official dinov2_*_pretrain.pth: cls_token, pos_embed, blocks.N.ls1.gamma ... "
                  "at the top level; or a training checkpoint with the ViT under 'teacher' as 'backbone.*')")
_DINOV2_HEADS = ("dino_head.", "ibot_head.")  # beside the backbone in DINOv2 training checkpoints


class Dinov2Encoder(ViTEncoder):
    """DINOv2 ViT-*/14, with registers when ``arch.num_registers`` > 0."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.model.embeddings.interpolate_pos_encoding = partial(
            official_dinov2_pos_embed, self.model.embeddings, patch_size=self.arch.patch_size,
            offset=self.arch.interpolate_offset, antialias=self.arch.interpolate_antialias)

    @property
    def hf_class(self) -> str:  # type: ignore[override]
        return "Dinov2WithRegistersModel" if self.arch.num_registers else "Dinov2Model"

    @property
    def hub_model_types(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("dinov2_with_registers",) if self.arch.num_registers else ("dinov2",)

    def hf_config(self, arch: ViTArch) -> Any:
        hf = transformers()
        common = dict(hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers,
                      num_attention_heads=arch.num_heads, patch_size=arch.patch_size,
                      image_size=arch.pos_image_size or arch.image_size, mlp_ratio=arch.mlp_ratio,
                      layer_norm_eps=1e-6, layerscale_value=1.0, qkv_bias=True, hidden_act="gelu")
        if arch.num_registers:
            return hf.Dinov2WithRegistersConfig(num_register_tokens=arch.num_registers, **common)
        return hf.Dinov2Config(**common)

    def convert_official(self, checkpoint: dict[str, Any]) -> StateDict:
        teacher = checkpoint.get("teacher")
        if isinstance(teacher, dict) and isinstance(teacher.get("backbone.cls_token"), torch.Tensor):
            state = strip_prefix(teacher, "backbone.")
        elif isinstance(checkpoint.get("cls_token"), torch.Tensor) and any(k.endswith(".ls1.gamma") for k in checkpoint):
            state = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
        else:
            raise not_the_format(_DINOV2_LAYOUT, checkpoint)
        return split_fused(rename(state, _DINOV2_RULES), "qkv", ("q_proj", "k_proj", "v_proj"))

    def tokens(self, x: torch.Tensor) -> Tokens:
        h = self.model(pixel_values=x).last_hidden_state  # [CLS, registers, patches], after the final norm
        return Tokens(cls=h[:, 0], patches=h[:, 1 + self.arch.num_registers:])


# ------------------------------------------------------------------------------------------- CLIP

_CLIP_RULES = [
    (r"^class_embedding$", "vision_model.embeddings.class_embedding"),
    (r"^positional_embedding$", "vision_model.embeddings.position_embedding.weight"),
    (r"^conv1\.", "vision_model.embeddings.patch_embedding."),
    (r"^ln_pre\.", "vision_model.pre_layrnorm."),
    (r"^ln_post\.", "vision_model.post_layernorm."),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.", r"vision_model.encoder.layers.\1.layer_norm1."),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.", r"vision_model.encoder.layers.\1.layer_norm2."),
    (r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$", r"vision_model.encoder.layers.\1.self_attn.qkv.\2"),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.", r"vision_model.encoder.layers.\1.self_attn.out_proj."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"vision_model.encoder.layers.\1.mlp.fc1."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"vision_model.encoder.layers.\1.mlp.fc2."),
]


_CLIP_LAYOUT = ("a CLIP checkpoint (OpenAI's TorchScript .pt or an open_clip state dict with the image tower as "
                "visual.*, or open_clip's training checkpoint {'state_dict': {'module.visual.*': ...}})")


class ClipEncoder(ViTEncoder):
    """CLIP ViT image tower with its projection (OpenAI weights; QuickGELU)."""

    hf_class = "CLIPVisionModelWithProjection"
    hub_model_types = ("clip", "clip_vision_model")
    token_poolings = {
        **ViTEncoder.token_poolings,
        "proj": TokenPooling(lambda t: t.projected, lambda a: a.projection_dim),  # type: ignore[arg-type,return-value]
    }

    def hf_config(self, arch: ViTArch) -> Any:
        return transformers().CLIPVisionConfig(
            hidden_size=arch.hidden_size, intermediate_size=arch.mlp_ratio * arch.hidden_size,
            num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads, image_size=arch.image_size,
            patch_size=arch.patch_size, projection_dim=arch.projection_dim, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        )

    def convert_official(self, checkpoint: dict[str, Any]) -> StateDict:
        wrapped = checkpoint.get("state_dict")  # open_clip's training checkpoints (DataParallel: "module.")
        if isinstance(wrapped, dict) and isinstance(wrapped.get("module.visual.conv1.weight"), torch.Tensor):
            state = strip_prefix(wrapped, "module.")
        elif isinstance(checkpoint.get("visual.conv1.weight"), torch.Tensor):
            state = checkpoint
        else:
            raise not_the_format(_CLIP_LAYOUT, checkpoint)
        visual = strip_prefix(state, "visual.")
        proj = visual.pop("proj", None)
        out = split_fused(rename(visual, _CLIP_RULES), "qkv", ("q_proj", "k_proj", "v_proj"))
        if proj is not None:
            out["visual_projection.weight"] = proj.t()  # a view of the file's tensor
        return out

    def tokens(self, x: torch.Tensor) -> Tokens:
        vision = self.model.vision_model
        out = vision(pixel_values=x)
        patches = vision.post_layernorm(out.last_hidden_state[:, 1:])
        return Tokens(cls=out.pooler_output, patches=patches, projected=self.model.visual_projection(out.pooler_output))


# -------------------------------------------------------------------------------------- MAE / MVP

_TIMM_VIT_RULES = [
    (r"^cls_token$", "embeddings.cls_token"),
    (r"^pos_embed$", "embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.layernorm_before."),
    (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.layernorm_after."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"layers.\1.attention.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"layers.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.mlp\.", r"layers.\1.mlp."),
    (r"^norm\.", "layernorm."),
]
# Keys of MAE pre-training checkpoints that the encoder does not use (MAE's decoder and its mask
# token). A classification head (head.*, fc_norm.*) is not ignored: it marks a supervised or
# fine-tuned ViT, which is not MAE pre-training.
_MAE_IGNORED = ("decoder", "mask_token")
_MAE_LAYOUT = ("an MAE/MVP checkpoint (timm ViT keys under 'model', as MAE's and MVP's load_checkpoint read "
               "checkpoint['model'])")


class MaeEncoder(ViTEncoder):
    """An MAE-pretrained ViT (MAE, MVP) as ``ViTMAEModel`` with masking off: mask ratio 0 and the
    identity patch order (the model shuffles patches by default, which would scramble the grid)."""

    hf_class = "ViTMAEModel"
    hub_model_types = ("vit_mae",)

    def hf_config(self, arch: ViTArch) -> Any:
        return transformers().ViTMAEConfig(
            hidden_size=arch.hidden_size, intermediate_size=arch.mlp_ratio * arch.hidden_size,
            num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads, image_size=arch.image_size,
            patch_size=arch.patch_size, qkv_bias=True, layer_norm_eps=1e-6, hidden_act="gelu", mask_ratio=0.0,
        )

    def convert_official(self, checkpoint: dict[str, Any]) -> StateDict:
        state = checkpoint.get("model")
        if not (isinstance(state, dict) and isinstance(state.get("cls_token"), torch.Tensor)
                and isinstance(state.get("patch_embed.proj.weight"), torch.Tensor)):
            raise not_the_format(_MAE_LAYOUT, checkpoint)
        state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and not k.startswith(_MAE_IGNORED)}
        return split_fused(rename(state, _TIMM_VIT_RULES), "qkv", ("q_proj", "k_proj", "v_proj"))

    def tokens(self, x: torch.Tensor) -> Tokens:
        n = self.arch.grid ** 2
        in_order = torch.arange(n, device=x.device, dtype=torch.float32).expand(x.shape[0], n)
        h = self.model(pixel_values=x, noise=in_order).last_hidden_state
        return Tokens(cls=h[:, 0], patches=h[:, 1:])


VIT_FAMILIES: dict[str, type[ViTEncoder]] = {"dinov2": Dinov2Encoder, "clip": ClipEncoder, "mae": MaeEncoder}


def build_vit(name: str, weights: WeightsLocation | None, *, family: str, arch: ViTArch, crop_pct: float,
              interpolation: str, mean: tuple[float, float, float], std: tuple[float, float, float],
              pooling: str = "cls", seed: int = 0, tiny: bool = False, full_frame: bool = False) -> ViTEncoder:
    """A ViT encoder of `family` ("dinov2", "clip", "mae"). ``full_frame`` resizes the whole frame to
    the input size instead of the official resize-then-centre-crop; ``tiny`` is for tests."""
    arch = arch.tiny() if tiny else arch
    pre = view_preprocessing(arch.image_size, 1.0 if full_frame else crop_pct, interpolation, mean, std)
    return VIT_FAMILIES[family](name, family, arch, pre, pooling=pooling, seed=seed, weights=weights)
