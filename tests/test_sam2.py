"""SAM 2.1 as SAM-G's segmenter: parity of the transformers-based model, loaded through
`convert_sam2_model`, with the official ``sam2`` package's modules (a); SAM-G end to end on a real
Fetch frame (b); files the conversion refuses (c)."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD
from vfmbench.masking.sam2_model import (SAM2_ARCHS, SAM2_DECODER, PromptableSam2, Sam2Embeddings,
                                         build_promptable_sam2)
from vfmbench.utils.errors import WeightsError
from vfmbench.weights import WeightsLocation, WeightsSpec

SPEC = WeightsSpec("sam2_hiera_t", "file:///nowhere", "sam2.pt", None, "Apache-2.0", "sam2")
TINY = SAM2_ARCHS["hiera_t"].tiny()
FRAME = 40  # frame side of the parity tests (resized to the toy model's 64-pixel input)
# Parity bound: largest absolute difference / the reference's std. Measured (CPU, float32): image
# features 0 (bit-identical), decoder logits <= 4.4e-4 (8e-3 on logits of std 18: the official code
# itself moves by up to 5e-3 when its input changes by 1e-7 relatively), IoU scores <= 2e-5 absolute.
# The broken variants below differ by more than 100 times the bound.
BOUND = 1e-3


def err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of `a` from the reference `b`, in units of `b`'s std."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return ((a - b).abs().max() / b.std()).item()


# ------------------------------------------------------------------------------ (a) parity


def _official():
    assert importlib.util.find_spec("sam2") is not None, \
        "the parity reference is missing: bash scripts/setup.sh (installs sam2==1.1.0 with the dev extra)"
    from sam2.modeling.backbones.hieradet import Hiera
    from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
    from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
    from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
    from sam2.modeling.position_encoding import PositionEmbeddingSine
    from sam2.modeling.sam2_base import SAM2Base
    from sam2.modeling.sam.transformer import RoPEAttention

    return locals()


def official_sam2():
    """A toy SAM2Base in the official package's own modules, with the settings of
    ``sam2.1_hiera_t.yaml`` (and ``build_sam2``'s stability fallback) at `Sam2Arch.tiny`'s sizes,
    video memory included (its keys are in the checkpoint, as in the real files)."""
    m, a, d = _official(), TINY, TINY.neck_dim
    g = a.grid
    pos = lambda n: m["PositionEmbeddingSine"](num_pos_feats=n, normalize=True, scale=None, temperature=10000)  # noqa: E731
    trunk = m["Hiera"](embed_dim=a.embed_dim, num_heads=a.num_heads, stages=a.stages,
                       global_att_blocks=a.global_att_blocks, window_spec=a.window_spec,
                       window_pos_embed_bkg_spatial_size=a.window_pos_embed_bkg)
    neck = m["FpnNeck"](pos(d), d_model=d, backbone_channel_list=a.dims[::-1], fpn_top_down_levels=[2, 3],
                        fpn_interp_model="nearest")
    rope = dict(rope_theta=10000.0, feat_sizes=[g, g], embedding_dim=d, num_heads=1, downsample_rate=1, dropout=0.1)
    layer = m["MemoryAttentionLayer"](
        activation="relu", dim_feedforward=64, dropout=0.1, pos_enc_at_attn=False, d_model=d,
        self_attention=m["RoPEAttention"](**rope), pos_enc_at_cross_attn_keys=True, pos_enc_at_cross_attn_queries=False,
        cross_attention=m["RoPEAttention"](**rope, rope_k_repeat=True, kv_in_dim=16))
    memory = m["MemoryEncoder"](
        out_dim=16, position_encoding=pos(16), in_dim=d,
        mask_downsampler=m["MaskDownSampler"](kernel_size=3, stride=2, padding=1, embed_dim=d),
        fuser=m["Fuser"](m["CXBlock"](dim=d, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
                         num_layers=1))
    return m["SAM2Base"](
        m["ImageEncoder"](trunk, neck, scalp=1), m["MemoryAttention"](d_model=d, pos_enc_at_input=True, layer=layer,
                                                                      num_layers=1),
        memory, num_maskmem=7, image_size=a.image_size, sigmoid_scale_for_mem_enc=20.0, sigmoid_bias_for_mem_enc=-10.0,
        use_mask_input_as_output_without_sam=True, directly_add_no_mem_embed=True, no_obj_embed_spatial=True,
        use_high_res_features_in_sam=True, multimask_output_in_sam=True, iou_prediction_use_sigmoid=True,
        use_obj_ptrs_in_encoder=True, add_tpos_enc_to_obj_ptrs=True, proj_tpos_enc_in_obj_ptrs=True,
        use_signed_tpos_enc_to_obj_ptrs=True, only_obj_ptrs_in_the_past_for_eval=True, pred_obj_scores=True,
        pred_obj_scores_mlp=True, fixed_no_obj_ptr=True, multimask_output_for_tracking=True,
        use_multimask_token_for_obj_ptr=True, multimask_min_pt_num=0, multimask_max_pt_num=1,
        use_mlp_for_obj_ptr_proj=True, compile_image_encoder=False,
        sam_mask_decoder_extra_args=dict(dynamic_multimask_via_stability=True, dynamic_multimask_stability_delta=0.05,
                                         dynamic_multimask_stability_thresh=0.98)).eval()


def peaked_(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights far from the std-0.02 init: matrices N(0, gain^2 / fan_in) with gain 3 on the
    attention queries and keys (attention is peaked, so a wrong head count or window shows) and 1.5
    elsewhere, vectors N(0, 0.2), LayerNorm scales around 1, embeddings N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1 and name.endswith("weight") and "embed" not in name and "token" not in name:
                gain = 3.0 if (".qkv." in name or ".q_proj." in name or ".k_proj." in name) else 1.5
                p.copy_(torch.randn(p.shape, generator=g) * gain / p[0].numel() ** 0.5)
            elif "norm" in name and name.endswith("weight") or name.endswith("downscaling.1.weight") \
                    or name.endswith("downscaling.4.weight") or name.endswith("upscaling.1.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if p.ndim > 1 else 0.2))


def official_pixels(frames: torch.Tensor) -> torch.Tensor:
    """``SAM2Transforms`` on uint8 frames: ToTensor ([0, 1]), Resize to the square input (tensor
    resize: bilinear, antialiased), Normalize with ImageNet's mean/std."""
    x = frames.permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, (TINY.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def official_embed(sam2, frames: torch.Tensor) -> Sam2Embeddings:
    """``SAM2ImagePredictor.set_image``: forward_image, the three finest levels, no_mem_embed on the coarsest."""
    with torch.no_grad():
        _, feats, _, sizes = sam2._prepare_backbone_features(sam2.forward_image(official_pixels(frames)))
        feats[-1] = feats[-1] + sam2.no_mem_embed
    maps = [f.permute(1, 2, 0).reshape(len(frames), -1, *s) for f, s in zip(feats, sizes)]
    return Sam2Embeddings(maps[2], (maps[0], maps[1]))


def official_decode(sam2, emb: Sam2Embeddings, points, labels, box=None, mask_input=None, multimask=True):
    """``SAM2ImagePredictor._predict`` image by image: prompts scaled by input / frame size, the box
    as corner points labelled 2 and 3 before the points, low-res logits clamped to [-32, 32] after the
    unclamped ones are resized to the frame."""
    s = TINY.image_size / FRAME
    low, iou, up = [], [], []
    with torch.no_grad():
        for i in range(len(emb.image)):
            coords, labs = points[i:i + 1] * s, labels[i:i + 1].int()
            if box is not None:
                coords = torch.cat([box[i:i + 1].reshape(1, 2, 2) * s, coords], 1)
                labs = torch.cat([torch.tensor([[2, 3]], dtype=torch.int), labs], 1)
            sparse, dense = sam2.sam_prompt_encoder(points=(coords, labs), boxes=None,
                                                    masks=None if mask_input is None else mask_input[i:i + 1, None])
            lr, q, _, _ = sam2.sam_mask_decoder(
                image_embeddings=emb.image[i:i + 1], image_pe=sam2.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
                repeat_image=False, high_res_features=[h[i:i + 1] for h in emb.high_res])
            up.append(F.interpolate(lr, (FRAME, FRAME), mode="bilinear", align_corners=False))
            low.append(lr.clamp(-32.0, 32.0))
            iou.append(q)
    return torch.cat(low), torch.cat(iou), torch.cat(up)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The toy model with peaked weights saved as the official files are ({"model": state_dict}),
    loaded back by the official loader and by ours."""
    from sam2.build_sam import _load_checkpoint

    made = official_sam2()
    peaked_(made)
    path = tmp_path_factory.mktemp("sam2") / "sam2.pt"
    torch.save({"model": made.state_dict()}, path)
    sam2 = official_sam2()
    _load_checkpoint(sam2, str(path))  # strict: every key of the file, the memory modules included
    ours = build_promptable_sam2("hiera_t", WeightsLocation(SPEC, path, "test"), tiny=True)
    return sam2.eval(), ours, path


def _frames(n=2, seed=0):
    return torch.randint(0, 256, (n, FRAME, FRAME, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_image_embeddings_and_high_res_features_match_sam2(official):
    sam2, ours, _ = official
    frames = _frames()
    ref, got = official_embed(sam2, frames), ours.embed(frames)
    assert got.image.shape == (2, 32, 4, 4) and [h.shape for h in got.high_res] == [(2, 4, 16, 16), (2, 8, 8, 8)]
    for a, b in zip((got.image, *got.high_res), (ref.image, *ref.high_res)):
        assert err(a, b) < BOUND / 100
    assert ref.image.std() > 1.0  # not a degenerate output


def test_peaked_weights_make_hiera_attention_peaked(official):
    """In the global-attention block each query's largest weight is far above uniform (1/16 on the
    4 x 4 map), so the head count and windows matter to the output."""
    sam2, _, _ = official
    block = sam2.image_encoder.trunk.blocks[TINY.global_att_blocks[0]]
    seen = {}
    hook = block.attn.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    official_embed(sam2, _frames())
    hook.remove()
    x = seen["x"]
    b, h, w, _ = x.shape
    heads = block.attn.num_heads
    q, k, _ = block.attn.qkv(x).reshape(b, h * w, 3, heads, -1).unbind(2)
    probs = torch.softmax(torch.einsum("bqhc,bkhc->bhqk", q, k) / q.shape[-1] ** 0.5, -1)
    peak = probs.amax(-1).mean().item()
    assert 4 / (h * w) < peak < 0.95, peak


@pytest.mark.parametrize("prompts", ["points", "negatives", "box", "box_and_mask", "single_mask"])
def test_prompt_encoder_and_mask_decoder_match_sam2(official, prompts):
    sam2, ours, _ = official
    emb = ours.embed(_frames(3, seed=1))
    g = torch.Generator().manual_seed(1)
    points = torch.rand(3, 4, 2, generator=g) * (FRAME - 1)
    labels = torch.ones(3, 4, dtype=torch.long) if prompts == "points" else torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1]])
    box = torch.tensor([[3.0, 4, 30, 33], [0, 0, 39, 39], [10, 2, 20, 12]]) if "box" in prompts else None
    mask_input = torch.randn(3, 16, 16, generator=g) * 4 if prompts == "box_and_mask" else None
    multimask = prompts != "single_mask"
    low, iou, up = official_decode(sam2, emb, points, labels, box, mask_input, multimask)
    out = ours.decode(emb, (FRAME, FRAME), points, labels, boxes=box, mask_input=mask_input, multimask=multimask)
    assert out.low_res.shape == low.shape and out.logits.shape == up.shape == (3, 3 if multimask else 1, FRAME, FRAME)
    assert err(out.low_res, low) < BOUND and err(out.logits, up) < BOUND
    torch.testing.assert_close(out.scores, iou, atol=1e-4, rtol=0)
    assert low.std() > 0.5 and 0.05 < iou.mean() < 0.95  # neither degenerate nor saturated


def test_a_wrong_head_count_or_window_fails_by_far(official):
    """The same file in a model with half the Hiera heads, another stage-3 window or half the
    decoder heads: outputs move by more than 100 times the parity bound."""
    _, ours, path = official
    frames = _frames()
    right = ours.embed(frames)
    location = WeightsLocation(SPEC, path, "test")
    dec = replace(SAM2_DECODER, hidden_size=TINY.neck_dim)
    for arch in (replace(TINY, num_heads=1), replace(TINY, window_spec=(4, 2, 2, 2))):
        wrong = PromptableSam2(arch, dec, weights=location).embed(frames)
        assert err(wrong.image, right.image) > 100 * BOUND
    pts, lab = torch.tensor([[[5.0, 6], [30, 20]]] * 2), torch.tensor([[1, 0]] * 2)
    a = ours.decode(right, (FRAME, FRAME), pts, lab).low_res
    b = PromptableSam2(TINY, replace(dec, num_heads=4), weights=location).decode(right, (FRAME, FRAME), pts, lab).low_res
    assert err(b, a) > 100 * BOUND


# ------------------------------------------------------------------------------ (b) SAM-G


def test_samg_with_a_tiny_sam2_segments_fetch_frames():
    """The real pipeline through the registry: tiny random SAM 2 + DINOv2, PerSAM fitted."""
    from vfmbench.masking.segmenters import build_segmenter
    from vfmbench.tasks import make_task

    seg = build_segmenter("sam2_hiera_t", {"pretrained": False, "tiny": True, "persam_steps": 30, "device": "cpu"},
                          task="fetch_push")
    with make_task("fetch_push", shift="video_hard") as env:
        frames = np.stack([env.reset(seed)["pixels"] for seed in (1000, 1001, 1002)])
    masks = seg.segment(frames)
    assert seg.name == "sam2_hiera_t" and masks.dtype == bool and masks.shape == (3, 84, 84)
    assert isinstance(seg.model.sam, PromptableSam2) and seg.model.sam.grid == 4
    w = seg.model.weights
    assert w.sum().item() == pytest.approx(1.0) and not torch.equal(w, torch.full((3,), 1 / 3))


def test_sam2_segmenters_are_listed_and_refuse_sam1_options():
    from vfmbench.masking.segmenters import SEGMENTERS, build_segmenter
    from vfmbench.utils.errors import ConfigError

    for arch in ("hiera_t", "hiera_s", "hiera_bp", "hiera_l"):
        row = SEGMENTERS.get(f"sam2_{arch}").to_dict()
        assert row["weights"] == f"sam2_{arch}" and row["family"] == "samg"
    # refused before any weights are looked for (these are not installed here)
    with pytest.raises(ConfigError, match="attention=eager picks an attention path of SAM 1's ViT; sam2_hiera_t"):
        build_segmenter("sam2_hiera_t", {"tiny": True, "attention": "eager"}, task="fetch_push")
    with pytest.raises(ConfigError, match="segmenter option attention: .*got 'sdpa' \\(SAM 1's ViT only\\)"):
        build_segmenter("sam2_hiera_t", {"tiny": True, "attention": "sdpa"}, task="fetch_push")


# ------------------------------------------------------------------------------ (c) refusals


def test_an_image_encoder_alone_is_refused_naming_the_layout(tmp_path, official):
    _, _, path = official
    state = torch.load(path, weights_only=True)["model"]
    bad = tmp_path / "encoder_only.pt"
    torch.save({"model": {k: v for k, v in state.items() if k.startswith("image_encoder.")}}, bad)
    with pytest.raises(WeightsError, match=r"this is not a whole SAM 2 checkpoint .*the file looks like weights under "
                                           r"'model' .*: a SAM 2 checkpoint \(image_encoder\.\*; no sam_prompt_encoder"
                                           r"\.\*, sam_mask_decoder\.\*, memory_attention\.\*, memory_encoder\.\*\)"):
        build_promptable_sam2("hiera_t", WeightsLocation(SPEC, bad, "t"), tiny=True)


def test_a_sam1_checkpoint_is_refused_naming_the_layout(tmp_path):
    from test_masking import official_sam

    bad = tmp_path / "sam_vit_b.pth"
    torch.save(official_sam().state_dict(), bad)
    with pytest.raises(WeightsError, match=r"this is not a whole SAM 2 checkpoint .*the file looks like a segment-anything"):
        build_promptable_sam2("hiera_t", WeightsLocation(SPEC, bad, "t"), tiny=True)


@pytest.mark.slow
@pytest.mark.parametrize("arch, config", [("hiera_t", "t"), ("hiera_s", "s"), ("hiera_bp", "b+"), ("hiera_l", "l")])
def test_full_size_configs_match_the_official_yaml(tmp_path, arch, config):
    """Each full size as the official package builds it from its own ``sam2.1_hiera_*.yaml``
    (``build_sam2``, its default initialisation), saved as the official file and loaded through our
    conversion: every key used, and the same image embedding and high-resolution features at
    1024 x 1024 on the CPU in float32 (a wrong stage depth, window, head count or global block
    would change them or fail the strict load)."""
    _official()
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    made = build_sam2(f"configs/sam2.1/sam2.1_hiera_{config}.yaml", device="cpu")
    path = tmp_path / "sam2.pt"
    torch.save({"model": made.state_dict()}, path)
    ours = build_promptable_sam2(arch, WeightsLocation(SPEC, path, "test"))
    frames = _frames(1)
    x = F.interpolate(frames.permute(0, 3, 1, 2).float() / 255, (1024, 1024), mode="bilinear", antialias=True,
                      align_corners=False)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        _, feats, _, sizes = made._prepare_backbone_features(made.forward_image(x))
    feats[-1] = feats[-1] + made.no_mem_embed
    ref = [f.permute(1, 2, 0).reshape(1, -1, *size) for f, size in zip(feats, sizes)]
    emb = ours.embed(frames)
    assert emb.image.shape == (1, 256, 64, 64)
    for got, want in zip((emb.high_res[0], emb.high_res[1], emb.image), ref):
        assert err(got, want) < BOUND


def test_a_damaged_or_foreign_file_of_ones_own_gets_an_error_about_that_file(tmp_path):
    """sam_weights=FILE that is empty, not a checkpoint, or a bare tensor: the error names the file
    given, says what is wrong with it, and points to the installed weight set as the alternative."""
    from vfmbench.masking.segmenters import build_segmenter

    cases = {"empty.pt": (b"", "could not be loaded (the file is empty)"),
             "text.pt": (b"<!DOCTYPE html><html>Access Denied</html>", "it is neither a PyTorch checkpoint"),
             "tensor.pt": (None, "the file holds a pickled Tensor, not a mapping of tensors")}
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content is None:
            torch.save(torch.ones(3), path)
        else:
            path.write_bytes(content)
        with pytest.raises(WeightsError) as exc:
            build_segmenter("sam2_hiera_t", {"tiny": True, "sam_weights": str(path), "device": "cpu"}, task="fetch_push")
        msg = str(exc.value)
        assert f"the weights file given for 'sam2_hiera_t' {expected}" in msg or expected in msg, msg
        assert str(path) in msg and "leave it out to use the installed weight set" in msg, msg
    with pytest.raises(WeightsError, match="the weights file given for 'sam2_hiera_t' does not exist"):
        build_segmenter("sam2_hiera_t", {"tiny": True, "sam_weights": str(tmp_path / "nowhere.pt")}, task="fetch_push")


def test_a_checkpoint_lacking_keys_the_conversion_needs_names_them(tmp_path, official):
    _, _, path = official
    state = torch.load(path, weights_only=True)["model"]
    bad = tmp_path / "no_points.pt"
    torch.save({"model": {k: v for k, v in state.items() if ".point_embeddings." not in k}}, bad)
    with pytest.raises(WeightsError, match=r"it lacks sam_prompt_encoder\.point_embeddings\.0\.weight, "):
        build_promptable_sam2("hiera_t", WeightsLocation(SPEC, bad, "t"), tiny=True)
