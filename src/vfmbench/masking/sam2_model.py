"""Segment Anything 2.1 as a promptable image segmenter: Hiera image encoder with its FPN neck,
prompt encoder and mask decoder (`transformers`' ``Sam2Model``), loaded from the official
``sam2.1_hiera_*.pt`` files (``{"model": state_dict}``) through `convert_sam2_model`.

Image mode as the official ``SAM2ImagePredictor`` runs it (facebookresearch/sam2,
``sam2/sam2_image_predictor.py``), no video memory:

- input: the frame resized to 1024 x 1024 (bilinear, antialiased; the aspect ratio is not kept),
  scaled to [0, 1] and normalised with ImageNet's mean/std (``SAM2Transforms``);
- features: the neck's three finest levels; the two high-resolution ones go through the mask
  decoder's ``conv_s0`` / ``conv_s1`` once per image (``SAM2Base.forward_image``), the coarsest
  gets ``no_mem_embed`` added (``directly_add_no_mem_embed``) and is the image embedding;
- prompts: points (x, y) and boxes in frame pixels, scaled by ``1024 / w`` and ``1024 / h``
  (``transform_coords``), boxes as two corner points of labels 2 and 3;
- output: low-resolution logits ``[B, K, 256, 256]`` (clamped to [-32, 32] as the predictor returns
  them for the next round's ``mask_input``), bilinearly resized to the frame unclamped, and the
  predicted IoUs. With one mask asked for, the decoder falls back to the best of its three masks
  when the single one is unstable (``dynamic_multimask_via_stability``, as ``build_sam2`` sets).

Shapes at full size: frames uint8 ``[B, H, W, 3]`` -> image embedding ``[B, 256, 64, 64]``,
high-resolution features ``[B, 32, 256, 256]`` and ``[B, 64, 128, 128]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from vfmbench.encoders._hf import transformers
from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, seeded, to_nchw_float
from vfmbench.masking.sam_model import Decoded, DecoderArch
from vfmbench.weights import StateDict, WeightsLocation, load_checkpoint_into, not_the_format, rename, unwrap

# the video-memory modules of SAM2Base, which image segmentation does not run
VIDEO_PREFIXES = ("memory_attention.", "memory_encoder.", "mask_downsample.", "obj_ptr_proj.", "obj_ptr_tpos_proj.",
                  "maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial")
_MLP = r"(output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)"
# official sam2 keys -> transformers Sam2Model keys (the first matching rule wins)
_RULES = [
    (r"^image_encoder\.trunk\.patch_embed\.proj\.", "vision_encoder.backbone.patch_embed.projection."),
    (r"^image_encoder\.trunk\.blocks\.(\d+)\.norm(\d)\.", r"vision_encoder.backbone.blocks.\1.layer_norm\2."),
    (r"^image_encoder\.trunk\.blocks\.(\d+)\.mlp\.layers\.0\.", r"vision_encoder.backbone.blocks.\1.mlp.proj_in."),
    (r"^image_encoder\.trunk\.blocks\.(\d+)\.mlp\.layers\.1\.", r"vision_encoder.backbone.blocks.\1.mlp.proj_out."),
    (r"^image_encoder\.trunk\.", "vision_encoder.backbone."),
    (r"^image_encoder\.neck\.convs\.(\d+)\.conv\.", r"vision_encoder.neck.convs.\1."),
    (r"^sam_prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^sam_prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^sam_prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^sam_prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^sam_prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^sam_prompt_encoder\.", "prompt_encoder."),
    (r"^sam_mask_decoder\.transformer\.(layers\.\d+\.\w+|final_attn_token_to_image)\.out_proj\.",
     r"mask_decoder.transformer.\1.o_proj."),
    (r"^sam_mask_decoder\.transformer\.layers\.(\d+)\.norm(\d)\.", r"mask_decoder.transformer.layers.\1.layer_norm\2."),
    (r"^sam_mask_decoder\.transformer\.layers\.(\d+)\.mlp\.layers\.0\.", r"mask_decoder.transformer.layers.\1.mlp.proj_in."),
    (r"^sam_mask_decoder\.transformer\.layers\.(\d+)\.mlp\.layers\.1\.", r"mask_decoder.transformer.layers.\1.mlp.proj_out."),
    (r"^sam_mask_decoder\.transformer\.norm_final_attn\.", "mask_decoder.transformer.layer_norm_final_attn."),
    (r"^sam_mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^sam_mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^sam_mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    # sam2's 3-layer MLP (layers.0, .1, .2) -> transformers' proj_in, layers.0, proj_out
    (rf"^sam_mask_decoder\.{_MLP}\.layers\.0\.", r"mask_decoder.\1.proj_in."),
    (rf"^sam_mask_decoder\.{_MLP}\.layers\.1\.", r"mask_decoder.\1.layers.0."),
    (rf"^sam_mask_decoder\.{_MLP}\.layers\.2\.", r"mask_decoder.\1.proj_out."),
    (r"^sam_mask_decoder\.", "mask_decoder."),
    (r"^no_mem_embed$", "no_memory_embedding"),
]
_PE_KEY = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_POINT_KEY = "sam_prompt_encoder.point_embeddings.{}.weight"
_REQUIRED = (_PE_KEY, "sam_mask_decoder.iou_token.weight", "sam_mask_decoder.conv_s0.weight",
             "image_encoder.trunk.patch_embed.proj.weight", "no_mem_embed")
_LAYOUT = ("a whole SAM 2 checkpoint (sam2.1_hiera_*.pt: {'model': image_encoder.trunk.*, image_encoder.neck.*, "
           "sam_prompt_encoder.*, sam_mask_decoder.*, no_mem_embed, ...})")


def convert_sam2_model(checkpoint: dict[str, Any]) -> StateDict:
    """An official SAM 2 checkpoint (the state dict, or ``{"model": state_dict}``) -> `transformers`
    ``Sam2Model`` keys. The video-memory entries (`VIDEO_PREFIXES`) are dropped; the four point
    embeddings become one table; the prompt encoder's random-Fourier matrix is also the model's
    shared image embedding. A file without the image encoder, prompt encoder and mask decoder
    (an image encoder alone, a SAM 1 checkpoint, ...) raises `CheckpointError` saying what it looks like."""
    state = unwrap(checkpoint, ("model",))
    missing = [k for k in (*_REQUIRED, *(_POINT_KEY.format(i) for i in range(4)))
               if not isinstance(state.get(k), torch.Tensor)]
    if missing:
        raise not_the_format(_LAYOUT, checkpoint, missing)
    kept = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and not k.startswith(VIDEO_PREFIXES)
            and k != _PE_KEY and not k.startswith("sam_prompt_encoder.point_embeddings.")}
    out = rename(kept, _RULES)
    out["prompt_encoder.point_embed.weight"] = torch.cat([state[_POINT_KEY.format(i)] for i in range(4)])
    out["shared_image_embedding.positional_embedding"] = state[_PE_KEY]
    out["prompt_encoder.shared_embedding.positional_embedding"] = state[_PE_KEY]
    return out


@dataclass(frozen=True)
class Sam2Arch:
    """Hiera trunk and FPN neck of one SAM 2.1 size (official ``sam2.1_hiera_{t,s,b+,l}.yaml``; the
    fields they leave out take ``Hiera``'s defaults: window_spec (8, 4, 14, 7), background
    positional embedding 14 x 14). Fixed for all sizes: 7 x 7 patch convolution of stride 4, three
    query-pooling stages of stride 2 doubling width and heads, MLP ratio 4, a 256-wide neck over the
    four stages with top-down fusion into the two coarsest (``fpn_top_down_levels [2, 3]``,
    nearest upsampling) whose coarsest output is dropped (``scalp 1``)."""

    embed_dim: int
    num_heads: int
    stages: tuple[int, int, int, int]
    global_att_blocks: tuple[int, ...]
    window_spec: tuple[int, int, int, int] = (8, 4, 14, 7)
    window_pos_embed_bkg: tuple[int, int] = (14, 14)
    image_size: int = 1024
    neck_dim: int = 256

    @property
    def dims(self) -> list[int]:
        return [self.embed_dim * 2 ** i for i in range(4)]

    @property
    def grid(self) -> int:
        """Side of the image-embedding grid (stride 16: 64 at full size)."""
        return self.image_size // 16

    def vision_config(self) -> Any:
        hf, g = transformers(), self.grid
        trunk = hf.Sam2HieraDetConfig(
            hidden_size=self.embed_dim, num_attention_heads=self.num_heads, image_size=[self.image_size] * 2,
            window_positional_embedding_background_size=list(self.window_pos_embed_bkg),
            blocks_per_stage=list(self.stages), embed_dim_per_stage=self.dims,
            num_attention_heads_per_stage=[self.num_heads * 2 ** i for i in range(4)],
            window_size_per_stage=list(self.window_spec), global_attention_blocks=list(self.global_att_blocks))
        return hf.Sam2VisionConfig(backbone_config=trunk, backbone_channel_list=self.dims[::-1],
                                   backbone_feature_sizes=[[4 * g] * 2, [2 * g] * 2, [g] * 2],
                                   fpn_hidden_size=self.neck_dim, fpn_top_down_levels=[2, 3], num_feature_levels=3)

    def tiny(self) -> "Sam2Arch":
        """Test-only toy size on a 64 x 64 input (stages at 16, 8, 4, 2): widths 16..128 with the
        heads of base_plus / large (2..16), windows that partition, pad (3 on a 4 x 4 map) and shrink
        under query pooling, one global block in stage 3, a 32-wide neck."""
        return replace(self, embed_dim=16, num_heads=2, stages=(1, 2, 3, 2), global_att_blocks=(4,),
                       window_spec=(4, 2, 3, 2), window_pos_embed_bkg=(3, 3), image_size=64, neck_dim=32)


SAM2_ARCHS = {
    "hiera_t": Sam2Arch(96, 1, (1, 2, 7, 2), (5, 7, 9), window_pos_embed_bkg=(7, 7)),
    "hiera_s": Sam2Arch(96, 1, (1, 2, 11, 2), (7, 10, 13), window_pos_embed_bkg=(7, 7)),
    "hiera_bp": Sam2Arch(112, 2, (2, 3, 16, 3), (12, 16, 20)),
    "hiera_l": Sam2Arch(144, 2, (2, 6, 36, 4), (23, 33, 43), window_spec=(8, 4, 16, 8), window_pos_embed_bkg=(7, 7)),
}
# SAM2Base._build_sam_heads: the prompt encoder and mask decoder of every size (mask_in_chans 16,
# TwoWayTransformer depth 2 / mlp 2048 / 8 heads, IoU head 3 x 256 with a sigmoid) on the neck's width
SAM2_DECODER = DecoderArch()


@dataclass
class Sam2Embeddings:
    """One image batch through the encoder: ``image`` ``[B, C, g, g]`` (C = 256, g = 64 at full size;
    with ``no_mem_embed``; the map SAM-G's correspondence reads) and the decoder's projected
    high-resolution features ``high_res`` (``[B, C/8, 4g, 4g]``, ``[B, C/4, 2g, 2g]``), float32."""

    image: torch.Tensor
    high_res: tuple[torch.Tensor, torch.Tensor]

    def expand(self, n: int) -> "Sam2Embeddings":
        """A batch of one repeated `n` times (views, no copy)."""
        return Sam2Embeddings(self.image.expand(n, -1, -1, -1), tuple(h.expand(n, -1, -1, -1) for h in self.high_res))


class PromptableSam2(torch.nn.Module):
    """SAM 2.1 with Hiera encoder `arch`, its prompt encoder and mask decoder (`transformers` ``Sam2Model``),
    in image mode (see the module docstring). `weights` None gives random weights (seeded)."""

    def __init__(self, arch: Sam2Arch, decoder: DecoderArch, *, seed: int = 0, weights: WeightsLocation | None = None):
        super().__init__()
        hf = transformers()
        self.arch, self.decoder_arch = arch, decoder
        cfg = hf.Sam2Config(
            vision_config=arch.vision_config(),
            prompt_encoder_config=hf.Sam2PromptEncoderConfig(
                hidden_size=decoder.hidden_size, image_size=arch.image_size, patch_size=16,
                mask_input_channels=decoder.mask_in_chans, layer_norm_eps=1e-6),
            mask_decoder_config=hf.Sam2MaskDecoderConfig(
                hidden_size=decoder.hidden_size, mlp_dim=decoder.mlp_dim, num_hidden_layers=decoder.num_layers,
                num_attention_heads=decoder.num_heads, iou_head_hidden_dim=decoder.iou_head_hidden_dim,
                iou_head_depth=3, dynamic_multimask_via_stability=True, dynamic_multimask_stability_delta=0.05,
                dynamic_multimask_stability_thresh=0.98),
        )
        with seeded(seed):
            self.model = hf.Sam2Model(cfg)
        if weights is None:
            self.pretrained, self.weights_id = False, f"random:seed={seed}"
        else:
            load_checkpoint_into(self.model, weights, convert_sam2_model)
            self.pretrained, self.weights_id = True, weights.sha256
        self.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.model.no_memory_embedding.device

    @property
    def grid(self) -> int:
        """Side of the image-embedding grid (64 at full size)."""
        return self.arch.grid

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` -> the encoder's input ``[B, 3, S, S]`` (S = 1024 at full size):
        [0, 1], resized bilinearly with antialiasing, ImageNet mean/std (``SAM2Transforms``)."""
        x = to_nchw_float(frames) / 255.0
        s = self.arch.image_size
        x = F.interpolate(x, (s, s), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def embed(self, frames: torch.Tensor) -> Sam2Embeddings:
        """uint8 ``[B, H, W, 3]`` on the model's device -> `Sam2Embeddings` (float32; the encoder
        runs in its own dtype)."""
        encoder, decoder = self.model.vision_encoder, self.model.mask_decoder
        x = self.pixels(frames).to(next(encoder.parameters()).dtype)
        fine, mid, coarse = (f.float() for f in encoder(pixel_values=x).fpn_hidden_states)
        image = coarse + self.model.no_memory_embedding.view(1, -1, 1, 1)
        return Sam2Embeddings(image, (decoder.conv_s0(fine), decoder.conv_s1(mid)))

    def postprocess(self, low_res: torch.Tensor, frame_hw: tuple[int, int]) -> torch.Tensor:
        """``SAM2Transforms.postprocess_masks`` (without hole filling, off by default):
        ``[B, K, h, w]`` -> ``[B, K, H, W]``, bilinear."""
        return F.interpolate(low_res, frame_hw, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def decode(self, embeddings: Sam2Embeddings, frame_hw: tuple[int, int], points: torch.Tensor | None,
               labels: torch.Tensor | None, boxes: torch.Tensor | None = None,
               mask_input: torch.Tensor | None = None, multimask: bool = True) -> Decoded:
        """Decode prompts on a batch. ``points`` ``[B, N, 2]`` (x, y) and ``boxes`` ``[B, 4]``
        (x0, y0, x1, y1) in frame pixels; ``labels`` ``[B, N]`` (1 positive, 0 negative);
        ``mask_input`` ``[B, 4g, 4g]`` low-res logits of an earlier round. ``multimask``: three masks
        (False: one, ``[B, 1, ...]``, with the stability fallback)."""
        h, w = frame_hw
        s = self.arch.image_size
        scale = torch.tensor([s / w, s / h], device=self.device)
        kwargs: dict[str, Any] = {}
        if points is not None:
            kwargs["input_points"] = (points.float() * scale)[:, None]
            kwargs["input_labels"] = labels.long()[:, None]
        if boxes is not None:
            kwargs["input_boxes"] = (boxes.float().view(-1, 2, 2) * scale).view(-1, 1, 4)
        if mask_input is not None:
            kwargs["input_masks"] = mask_input[:, None].float()
        out = self.model(image_embeddings=[*embeddings.high_res, embeddings.image], multimask_output=multimask, **kwargs)
        low_res = out.pred_masks[:, 0].float()
        return Decoded(low_res=low_res.clamp(-32.0, 32.0), logits=self.postprocess(low_res, frame_hw),
                       scores=out.iou_scores[:, 0].float())


def build_promptable_sam2(arch_name: str, weights: WeightsLocation | None, *, seed: int = 0,
                          tiny: bool = False) -> PromptableSam2:
    """SAM 2.1 of size `arch_name` (a key of `SAM2_ARCHS`: "hiera_t", "hiera_s", "hiera_bp",
    "hiera_l"); `weights` None gives random weights; ``tiny`` (tests) the toy size of
    `Sam2Arch.tiny` with the official decoder on its 32-wide neck."""
    arch = SAM2_ARCHS[arch_name].tiny() if tiny else SAM2_ARCHS[arch_name]
    return PromptableSam2(arch, replace(SAM2_DECODER, hidden_size=arch.neck_dim), seed=seed, weights=weights)
