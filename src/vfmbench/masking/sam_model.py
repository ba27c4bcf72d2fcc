"""Segment Anything as a whole promptable model: image encoder, prompt encoder and mask decoder
(`transformers`' ``SamModel``), loaded from the official ``sam_vit_*.pth`` files whole.

Shapes (official sizes): frames uint8 ``[B, H, W, 3]`` -> image embeddings ``[B, 256, 64, 64]``;
prompts in frame pixel coordinates (x, y), scaled here to the 1024 input as segment-anything's
``ResizeLongestSide.apply_coords`` does; mask logits ``[B, 3, 256, 256]`` at low resolution and
``[B, 3, H, W]`` after segment-anything's ``postprocess_masks`` (bilinear to 1024, crop the padding,
bilinear to the frame). Scores are SAM's predicted IoUs ``[B, 3]``.

Checkpoint keys follow segment-anything's modules (``segment_anything/modeling``); `convert_sam_model`
maps them onto the `transformers` module names (`_PROMPT_DECODER_RULES`, plus the image encoder's
rules of `vfmbench.encoders.sam`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from vfmbench.encoders._hf import hub_state_dict, transformers
from vfmbench.encoders.base import Preprocessing, apply_preprocessing, seeded
from vfmbench.encoders.sam import SAM_ARCHS, SAM_PIXEL_MEAN, SAM_PIXEL_STD, SamArch, convert_segment_anything
from vfmbench.encoders.sam_attention import DEFAULT_ATTENTION, set_sam_attention
from vfmbench.weights import StateDict, WeightsLocation, load_checkpoint_into, not_the_format, rename

# segment-anything prompt-encoder / mask-decoder keys -> transformers SamModel keys
_PROMPT_DECODER_RULES = [
    (r"^prompt_encoder\.point_embeddings\.(\d)\.", r"prompt_encoder.point_embed.\1."),
    (r"^prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^prompt_encoder\.", "prompt_encoder."),
    (r"^mask_decoder\.transformer\.layers\.(\d+)\.norm(\d)\.", r"mask_decoder.transformer.layers.\1.layer_norm\2."),
    (r"^mask_decoder\.transformer\.norm_final_attn\.", "mask_decoder.transformer.layer_norm_final_attn."),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    # segment-anything's 3-layer MLP (layers.0, .1, .2) -> transformers' proj_in, layers.0, proj_out
    (r"^mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.0\.", r"mask_decoder.\1.proj_in."),
    (r"^mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.1\.", r"mask_decoder.\1.layers.0."),
    (r"^mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head)\.layers\.2\.", r"mask_decoder.\1.proj_out."),
    (r"^mask_decoder\.", "mask_decoder."),
]
_PE_KEY = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_LAYOUT = "a whole segment-anything checkpoint (sam_vit_*.pth: image_encoder.*, prompt_encoder.*, mask_decoder.*)"


def convert_sam_model(checkpoint: dict[str, Any]) -> StateDict:
    """A whole segment-anything state dict -> `transformers` ``SamModel`` keys. The random-Fourier
    matrix of the prompt encoder is the model's shared image embedding (one tensor, two names).
    A file without the prompt encoder (an image encoder alone) raises `CheckpointError`."""
    missing = [k for k in (_PE_KEY, "mask_decoder.iou_token.weight") if not isinstance(checkpoint.get(k), torch.Tensor)]
    if missing:
        raise not_the_format(_LAYOUT, checkpoint, missing)
    out = {f"vision_encoder.{k}": v for k, v in convert_segment_anything(checkpoint).items()}
    rest = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)
            and k.startswith(("prompt_encoder.", "mask_decoder.")) and k != _PE_KEY}
    out.update(rename(rest, _PROMPT_DECODER_RULES))
    out["shared_image_embedding.positional_embedding"] = checkpoint[_PE_KEY]
    out["prompt_encoder.shared_embedding.positional_embedding"] = checkpoint[_PE_KEY]
    return out


@dataclass(frozen=True)
class DecoderArch:
    """Prompt encoder and mask decoder sizes (segment-anything ``build_sam.py`` / ``_build_sam``:
    prompt_embed_dim 256, mask_in_chans 16, TwoWayTransformer depth 2, mlp_dim 2048, 8 heads,
    3 multimask outputs, IoU head depth 3 and width 256)."""

    hidden_size: int = 256
    mlp_dim: int = 2048
    num_heads: int = 8
    num_layers: int = 2
    mask_in_chans: int = 16
    iou_head_hidden_dim: int = 256

    def tiny(self) -> "DecoderArch":
        """Test-only toy size (the head count is kept)."""
        return replace(self, hidden_size=16, mlp_dim=32, mask_in_chans=4, iou_head_hidden_dim=16)


@dataclass
class Decoded:
    """One decoding of a batch: ``low_res`` logits ``[B, 3, 4g, 4g]`` (g: embedding grid, 256 at
    full size; SAM's ``mask_input`` for the next round), ``logits`` ``[B, 3, H, W]`` at frame size
    and ``scores`` (predicted IoU) ``[B, 3]``. Masks are ``logits > 0``."""

    low_res: torch.Tensor
    logits: torch.Tensor
    scores: torch.Tensor


class PromptableSam(torch.nn.Module):
    """SAM ViT-B/L/H with its prompt encoder and mask decoder (`transformers` ``SamModel``).
    ``attention``: the image encoder's global-attention path, "concat" (default), "eager", "auto" or "flex", as the
    SAM encoders' option (`vfmbench.encoders.sam_attention`)."""

    def __init__(self, arch: SamArch, decoder: DecoderArch, *, seed: int = 0, weights: WeightsLocation | None = None,
                 attention: str = DEFAULT_ATTENTION):
        super().__init__()
        hf = transformers()
        self.arch, self.decoder_arch = arch, decoder
        vision = arch.config()
        vision.num_pos_feats = decoder.hidden_size // 2  # the prompt encoder's random Fourier features
        cfg = hf.SamConfig(
            vision_config=vision,
            prompt_encoder_config=hf.SamPromptEncoderConfig(
                hidden_size=decoder.hidden_size, image_size=arch.image_size, patch_size=arch.patch_size,
                mask_input_channels=decoder.mask_in_chans, layer_norm_eps=1e-6),
            mask_decoder_config=hf.SamMaskDecoderConfig(
                hidden_size=decoder.hidden_size, mlp_dim=decoder.mlp_dim, num_hidden_layers=decoder.num_layers,
                num_attention_heads=decoder.num_heads, iou_head_hidden_dim=decoder.iou_head_hidden_dim,
                layer_norm_eps=1e-6),
        )
        with seeded(seed):
            self.model = hf.SamModel(cfg)
        if weights is None:
            self.pretrained, self.weights_id = False, f"random:seed={seed}"
        else:
            load_checkpoint_into(self.model, weights, convert_sam_model,
                                 hub=lambda p: hub_state_dict("SamModel", p, self.model.config, model_types=("sam",)))
            self.pretrained, self.weights_id = True, weights.sha256
        set_sam_attention(self.model.vision_encoder, attention)
        self.preprocessing = Preprocessing(scale=1.0, longest_side=arch.image_size, mean=SAM_PIXEL_MEAN,
                                           std=SAM_PIXEL_STD, interpolation="bilinear")
        self.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.model.shared_image_embedding.positional_embedding.device

    @property
    def grid(self) -> int:
        """Side of the image-embedding grid (64 at full size)."""
        return self.arch.image_size // self.arch.patch_size

    def input_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The frame's size inside the padded square input (segment-anything's ``get_preprocess_shape``)."""
        h, w = frame_hw
        s = self.arch.image_size / max(h, w)
        return int(h * s + 0.5), int(w * s + 0.5)

    @torch.no_grad()
    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` on the model's device -> image embeddings ``[B, C, g, g]`` (float32)."""
        x = apply_preprocessing(frames, self.preprocessing)
        return self.model.vision_encoder(pixel_values=x.to(next(self.model.vision_encoder.parameters()).dtype)
                                         ).last_hidden_state.float()

    def postprocess(self, low_res: torch.Tensor, frame_hw: tuple[int, int]) -> torch.Tensor:
        """segment-anything's ``Sam.postprocess_masks``: ``[B, K, h, w]`` -> ``[B, K, H, W]`` (bilinear
        to the square input, the padding cropped, bilinear to the frame)."""
        s = self.arch.image_size
        x = F.interpolate(low_res, (s, s), mode="bilinear", align_corners=False)
        ih, iw = self.input_size(frame_hw)
        return F.interpolate(x[..., :ih, :iw], frame_hw, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def decode(self, embeddings: torch.Tensor, frame_hw: tuple[int, int], points: torch.Tensor | None,
               labels: torch.Tensor | None, boxes: torch.Tensor | None = None,
               mask_input: torch.Tensor | None = None, multimask: bool = True) -> Decoded:
        """Decode prompts on a batch. ``points`` ``[B, N, 2]`` (x, y) and ``boxes`` ``[B, 4]``
        (x0, y0, x1, y1) in frame pixels; ``labels`` ``[B, N]`` (1 positive, 0 negative);
        ``mask_input`` ``[B, 4g, 4g]`` low-res logits of an earlier round. ``multimask``: three masks
        (False: SAM's single-mask output, ``[B, 1, ...]``)."""
        scale = self.arch.image_size / max(frame_hw)
        kwargs: dict[str, Any] = {}
        if points is not None:
            kwargs["input_points"] = (points.float() * scale)[:, None]
            kwargs["input_labels"] = labels.long()[:, None]
        if boxes is not None:
            kwargs["input_boxes"] = (boxes.float() * scale)[:, None]
        if mask_input is not None:
            kwargs["input_masks"] = mask_input[:, None].float()
        out = self.model(image_embeddings=embeddings, multimask_output=multimask, **kwargs)
        low_res = out.pred_masks[:, 0].float()
        return Decoded(low_res=low_res, logits=self.postprocess(low_res, frame_hw), scores=out.iou_scores[:, 0].float())


def build_promptable_sam(arch_name: str, weights: WeightsLocation | None, *, seed: int = 0,
                         tiny: bool = False, attention: str = DEFAULT_ATTENTION) -> PromptableSam:
    """SAM of size `arch_name` ("vit_b", "vit_l", "vit_h"); `weights` None gives random weights;
    ``tiny`` (tests) the toy sizes of `SamArch.tiny` and `DecoderArch.tiny`; ``attention`` the image
    encoder's global-attention path ("auto", "eager", "flex", "concat")."""
    arch, dec = SAM_ARCHS[arch_name], DecoderArch()
    if tiny:
        arch, dec = arch.tiny(), dec.tiny()
        arch = replace(arch, out_channels=dec.hidden_size)
    return PromptableSam(arch, dec, seed=seed, weights=weights, attention=attention)
