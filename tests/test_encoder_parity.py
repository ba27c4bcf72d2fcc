"""Parity of the zoo encoders with their reference implementations, through official checkpoint formats.

Each test builds a reference model (`transformers`) with random weights, writes those weights in
the official format (segment-anything ``.pth``, DINOv2 ``*_pretrain.pth``, OpenAI's TorchScript
``.pt``, open_clip state dicts, MAE/MVP ``.pth``, hub ``save_pretrained`` folders, torchvision /
R3M / VIP state dicts), loads them through the real loader and compares outputs. The key maps
written here go from the reference layout to the official one, independently of the loaders'.
Tiny sizes by default (width 48, 2 layers, the official head count); full sizes are ``slow``.

Two things make these tests able to catch a wrong architecture, not only a wrong key map:

- the references are configured from the official numbers (`OFFICIAL` in test_encoder_zoo.py,
  each cited to its source file), never from the encoder under test, so a wrong head count,
  eps, activation or interpolation rule in the zoo makes the two differ;
- the random weights give peaked attention (`randomize_`: query/key weights scaled so that
  attention logits have a standard deviation of about 4). With the usual std-0.02 init the
  attention is near-uniform, and a model with the wrong head count stays within 1% of the right
  one (`test_peaked_weights_expose_a_wrong_head_count` shows both).
"""

from __future__ import annotations

import argparse
import math
import re
import warnings
from dataclasses import replace
from functools import partial

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from test_encoder_zoo import OFFICIAL, official_dinov2_interpolation  # noqa: E402
from test_weights import ARCHIVE_SIDE_EFFECT, script_archive  # noqa: E402

from vfmbench.encoders import create_encoder  # noqa: E402
from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vfmbench.encoders.resnet import ResNetTrunk  # noqa: E402
from vfmbench.encoders.vit import MaeEncoder  # noqa: E402
from vfmbench.weights import sha256_file  # noqa: E402

ATOL = 1e-4
TINY = 48  # the zoo's toy width (ViTArch.tiny, SamArch.tiny): divisible by every official head count
QK_GAIN = 2.0  # query/key weights N(0, (gain^2)/fan_in): attention logits with a std of about gain^2 = 4

_QK = re.compile(r"\.(q_proj|k_proj)\.weight$")
_FUSED_QKV = re.compile(r"\.(attn\.qkv|qkv)\.weight$")
_TOKENS = re.compile(r"(cls_token|class_embedding|mask_token|register_tokens|pos_embed|position_embedding|rel_pos)")
_NORM = re.compile(r"(norm|layer_scale|bn)[^.]*\.(weight|lambda1)$")


def randomize_(module: nn.Module, seed: int = 0, init: str = "peaked") -> nn.Module:
    """Overwrite every floating parameter and buffer with noise.

    ``peaked`` (the default): weight matrices N(0, 1/fan_in), except query and key projections
    (separate, or the first two thirds of a fused qkv) at gain `QK_GAIN`, so that attention is
    peaked; norm scales and layer scales 1 + N(0, 0.2); tokens, position tables and biases N(0, 0.2);
    running variances positive. ``std002``: transformers'/timm's usual init, N(0, 0.02) weights,
    unit norms, zero biases (near-uniform attention: a wrong head count hides)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            noise = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                value = noise.abs() * 0.2 + 0.5
            elif _NORM.search(name):
                value = torch.ones(t.shape) + (0.0 if init == "std002" else 0.2 * noise)
            elif init == "std002":
                value = torch.zeros(t.shape) if name.endswith("bias") else 0.02 * noise
            elif _TOKENS.search(name) or t.ndim < 2:
                value = 0.2 * noise
            else:
                value = noise / math.sqrt(t[0].numel())
                if _QK.search(name):
                    value *= QK_GAIN
                elif _FUSED_QKV.search(name):
                    value[: 2 * t.shape[0] // 3] *= QK_GAIN
            t.copy_(value)
    return module.eval()


def reference_config(name: str, tiny: bool = True):
    """The transformers config of entry `name`'s reference model, from the official numbers
    (OFFICIAL), never from the encoder under test; ``tiny``: width 48, 2 layers, a 2 x 2 grid (SAM:
    64 x 64 input, windows of 2, the second layer global, 16 output channels), as the zoo's toy sizes."""
    o = OFFICIAL[name]
    width, depth = (TINY, 2) if tiny else (o["width"], o["depth"])
    common = dict(hidden_size=width, num_hidden_layers=depth, num_attention_heads=o["heads"], patch_size=o["patch"],
                  layer_norm_eps=o["eps"], hidden_act=o["act"])
    if o["kind"] == "sam":
        vision = transformers.SamVisionConfig(
            **common, global_attn_indexes=[1] if tiny else list(o["global_attn"]), image_size=64 if tiny else o["image"],
            window_size=2 if tiny else o["window"], output_channels=16 if tiny else o["out"],
            mlp_dim=o["mlp_ratio"] * width, qkv_bias=True, use_abs_pos=True, use_rel_pos=True)
        return transformers.SamConfig(vision_config=vision.to_dict())
    image = 2 * o["patch"] if tiny else o["image"]
    if name.startswith("dinov2"):
        dino = dict(**common, image_size=3 * o["patch"] if tiny else o["pos"], mlp_ratio=o["mlp_ratio"],
                    layerscale_value=1.0, qkv_bias=True)
        if o["registers"]:
            return transformers.Dinov2WithRegistersConfig(**dino, num_register_tokens=o["registers"])
        return transformers.Dinov2Config(**dino)
    if name.startswith("clip"):
        return transformers.CLIPVisionConfig(**common, intermediate_size=o["mlp_ratio"] * width, image_size=image,
                                             projection_dim=16 if tiny else o["proj"])
    return transformers.ViTMAEConfig(**common, intermediate_size=o["mlp_ratio"] * width, image_size=image,
                                     qkv_bias=True, mask_ratio=0.0)


def _official_dinov2_pos_embed(embeddings, tokens, height, width, *, offset, antialias, patch):
    return official_dinov2_interpolation(embeddings.position_embeddings, height // patch, width // patch,
                                         offset, antialias).to(embeddings.position_embeddings.dtype)


def images(n: int = 2, h: int = 84, w: int = 84, seed: int = 0) -> torch.Tensor:
    """Smooth-ish uint8 frames ``[n, h, w, 3]``."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, h // 4, w // 4, generator=g)
    big = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return (big * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def remap(state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        for pat, rep in rules:
            if re.match(pat, k):
                k = re.sub(pat, rep, k, count=1)
                break
        out[k] = v
    return out


def fuse_qkv(state: dict[str, torch.Tensor], q: str, k: str, v: str, fused: str) -> dict[str, torch.Tensor]:
    """Concatenate ``<q>``/``<k>``/``<v>`` entries into one ``<fused>`` entry (official fused layout)."""
    out = {}
    for key, value in state.items():
        if q in key:
            out[key.replace(q, fused)] = torch.cat([value, state[key.replace(q, k)], state[key.replace(q, v)]])
        elif k not in key and v not in key:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------- SAM

def sam_reference(name: str = "sam_vit_b", tiny: bool = True, seed: int = 0):
    model = transformers.SamModel(reference_config(name, tiny))
    randomize_(model.vision_encoder, seed)
    return model.eval()


def to_segment_anything(vision_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers SamVisionEncoder keys -> segment-anything ``image_encoder.*`` keys (+ other heads)."""
    rules = [
        (r"^patch_embed\.projection\.", "patch_embed.proj."),
        (r"^layers\.(\d+)\.layer_norm1\.", r"blocks.\1.norm1."),
        (r"^layers\.(\d+)\.layer_norm2\.", r"blocks.\1.norm2."),
        (r"^layers\.(\d+)\.", r"blocks.\1."),
        (r"^neck\.conv1\.", "neck.0."),
        (r"^neck\.layer_norm1\.", "neck.1."),
        (r"^neck\.conv2\.", "neck.2."),
        (r"^neck\.layer_norm2\.", "neck.3."),
    ]
    state = {f"image_encoder.{k}": v for k, v in remap(vision_state, rules).items()}
    state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 128)
    state["mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    return state


def check_sam(name: str, tiny: bool, tmp_path, n_images: int = 2) -> None:
    ref = sam_reference(name, tiny)
    path = tmp_path / "sam.pth"
    torch.save(to_segment_anything(ref.vision_encoder.state_dict()), path)
    enc = create_encoder(name, weights=path, tiny=tiny)
    assert enc.pretrained and enc.weights_id == sha256_file(path)
    imgs = images(n_images, 84, 100)
    with torch.no_grad():
        x = enc.preprocess(imgs)
        expected = ref.get_image_embeddings(x)
        spatial = enc.spatial_features(imgs)
        pooled = enc(imgs)
    torch.testing.assert_close(spatial, expected, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(pooled, nn.functional.adaptive_avg_pool2d(expected, 6).flatten(1), atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("name", ["sam_vit_b", "sam_vit_h"])
def test_sam_official_checkpoint_matches_transformers_sam(name, tmp_path):
    check_sam(name, True, tmp_path)


def test_sam_hub_folder_matches_official_checkpoint(tmp_path):
    ref = sam_reference("sam_vit_l")
    ref.save_pretrained(tmp_path / "hub")
    torch.save(to_segment_anything(ref.vision_encoder.state_dict()), tmp_path / "sam.pth")
    imgs = images()
    a = create_encoder("sam_vit_l", weights=tmp_path / "hub", tiny=True)
    b = create_encoder("sam_vit_l", weights=tmp_path / "sam.pth", tiny=True)
    with torch.no_grad():
        torch.testing.assert_close(a.spatial_features(imgs), b.spatial_features(imgs))


def test_sam_preprocessing_matches_transformers_processor():
    """Longest side to 1024 (bilinear), SAM mean/std on [0, 255], zero padding to 1024 x 1024."""
    enc = create_encoder("sam_vit_b", pretrained=False, tiny=True)
    from vfmbench.encoders.base import apply_preprocessing
    from dataclasses import replace

    pre = replace(enc.preprocessing, longest_side=1024)
    imgs = images(1, 84, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc = transformers.SamImageProcessor(longest_edge=1024)
        ref = proc(images=imgs[0].numpy(), return_tensors="pt")["pixel_values"]
    ours = apply_preprocessing(imgs, pre)
    assert ours.shape == ref.shape == (1, 3, 1024, 1024)
    assert (ours[..., 861:, :] == 0).all()  # padding below the resized 860 rows (84 * 1024 / 100)
    assert (ours - ref).abs().mean() < 0.01 and (ours - ref).abs().max() < 0.1


@pytest.mark.slow
def test_sam_vit_b_full_size_matches_transformers_sam(tmp_path):
    check_sam("sam_vit_b", False, tmp_path, n_images=1)


# ------------------------------------------------------------------------------------------ DINOv2

def dinov2_reference(name: str, tiny: bool = True) -> nn.Module:
    """The reference DINOv2 with the official position-embedding interpolation (OFFICIAL's offset and
    antialiasing, DINO_SRC's formula as test_encoder_zoo writes it)."""
    o = OFFICIAL[name]
    cls = transformers.Dinov2WithRegistersModel if o["registers"] else transformers.Dinov2Model
    model = randomize_(cls(reference_config(name, tiny)), seed=1)
    offset, antialias = o["interp"]
    model.embeddings.interpolate_pos_encoding = partial(
        _official_dinov2_pos_embed, model.embeddings, offset=offset, antialias=antialias, patch=o["patch"])
    return model


def to_dinov2_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    rules = [
        (r"^embeddings\.cls_token$", "cls_token"),
        (r"^embeddings\.mask_token$", "mask_token"),
        (r"^embeddings\.position_embeddings$", "pos_embed"),
        (r"^embeddings\.register_tokens$", "register_tokens"),
        (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
        (r"^encoder\.layer\.(\d+)\.attention\.o_proj\.", r"blocks.\1.attn.proj."),
        (r"^encoder\.layer\.(\d+)\.attention\.", r"blocks.\1.attn."),
        (r"^encoder\.layer\.(\d+)\.layer_scale1\.lambda1$", r"blocks.\1.ls1.gamma"),
        (r"^encoder\.layer\.(\d+)\.layer_scale2\.lambda1$", r"blocks.\1.ls2.gamma"),
        (r"^encoder\.layer\.(\d+)\.", r"blocks.\1."),
        (r"^layernorm\.", "norm."),
    ]
    return fuse_qkv(remap(state, rules), ".q_proj.", ".k_proj.", ".v_proj.", ".qkv.")


@pytest.mark.parametrize("name", ["dinov2_vitb14_reg", "dinov2_vits14", "dinov2_vitl14_reg"])
def test_dinov2_official_and_hub_checkpoints_match_transformers(name, tmp_path):
    ref = dinov2_reference(name)
    torch.save(to_dinov2_official(ref.state_dict()), tmp_path / "dinov2_pretrain.pth")
    ref.save_pretrained(tmp_path / "hub")
    imgs = images()
    regs = OFFICIAL[name]["registers"]
    for weights in (tmp_path / "dinov2_pretrain.pth", tmp_path / "hub"):
        enc = create_encoder(name, weights=weights, tiny=True)
        with torch.no_grad():
            h = ref(pixel_values=enc.preprocess(imgs)).last_hidden_state
            torch.testing.assert_close(enc(imgs), h[:, 0], atol=ATOL, rtol=1e-4)
            grid = enc.spatial_features(imgs)
            assert grid.shape == (2, TINY, 2, 2)
            torch.testing.assert_close(grid.flatten(2).transpose(1, 2), h[:, 1 + regs:], atol=ATOL, rtol=1e-4)


def test_dinov2_preprocessing_matches_transformers_processor():
    """DINOv2's eval transform: shorter side to 256 (bicubic), centre crop 224, ImageNet mean/std."""
    from vfmbench.encoders.base import apply_preprocessing, view_preprocessing

    imgs = images(1, 120, 160)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc = transformers.BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                              resample=3, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
        ref = proc(images=imgs[0].numpy(), return_tensors="pt")["pixel_values"]
    ours = apply_preprocessing(imgs, view_preprocessing(224, 0.875, "bicubic", IMAGENET_MEAN, IMAGENET_STD))
    assert (ours - ref).abs().mean() < 0.01


# -------------------------------------------------------------------------------------------- CLIP

def to_openai_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPVisionModelWithProjection keys -> OpenAI/open_clip ``visual.*`` keys."""
    rules = [
        (r"^vision_model\.embeddings\.class_embedding$", "class_embedding"),
        (r"^vision_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
        (r"^vision_model\.embeddings\.patch_embedding\.", "conv1."),
        (r"^vision_model\.pre_layrnorm\.", "ln_pre."),
        (r"^vision_model\.post_layernorm\.", "ln_post."),
        (r"^vision_model\.encoder\.layers\.(\d+)\.layer_norm1\.", r"transformer.resblocks.\1.ln_1."),
        (r"^vision_model\.encoder\.layers\.(\d+)\.layer_norm2\.", r"transformer.resblocks.\1.ln_2."),
        (r"^vision_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"transformer.resblocks.\1.attn.out_proj."),
        (r"^vision_model\.encoder\.layers\.(\d+)\.self_attn\.", r"transformer.resblocks.\1.attn."),
        (r"^vision_model\.encoder\.layers\.(\d+)\.mlp\.fc1\.", r"transformer.resblocks.\1.mlp.c_fc."),
        (r"^vision_model\.encoder\.layers\.(\d+)\.mlp\.fc2\.", r"transformer.resblocks.\1.mlp.c_proj."),
    ]
    proj = state["visual_projection.weight"]
    mapped = remap({k: v for k, v in state.items() if k != "visual_projection.weight"}, rules)
    mapped = fuse_qkv(mapped, ".q_proj.", ".k_proj.", ".v_proj.", ".in_proj.")
    out = {f"visual.{k.replace('attn.in_proj.', 'attn.in_proj_')}": v for k, v in mapped.items()}
    out["visual.proj"] = proj.t().contiguous()
    out["logit_scale"] = torch.tensor(4.6)  # text-side entries the loader must ignore
    out["token_embedding.weight"] = torch.randn(10, 8)
    return out


@pytest.mark.parametrize("name", ["clip_vitb16", "clip_vitl14"])
def test_clip_openai_torchscript_open_clip_and_hub_match_transformers(name, tmp_path, capfd):
    """OpenAI's TorchScript archive is read without running its code (the archive written here has a
    module whose __setstate__ prints when torch.jit.load runs it)."""
    ref = randomize_(transformers.CLIPVisionModelWithProjection(reference_config(name)), seed=2)
    official = to_openai_clip(ref.state_dict())
    official["visual.proj"] = official["visual.proj"].half()  # OpenAI's archives keep fp16 weights
    ref.visual_projection.weight.data = official["visual.proj"].float().t()
    script_archive(tmp_path / "ViT.pt", official)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in official.items()}},
               tmp_path / "open_clip_pytorch_model.bin")
    ref.save_pretrained(tmp_path / "hub")
    imgs = images()
    for weights in ("ViT.pt", "open_clip_pytorch_model.bin", "hub"):
        enc = create_encoder(name, weights=tmp_path / weights, tiny=True)
        assert ARCHIVE_SIDE_EFFECT not in capfd.readouterr().out
        with torch.no_grad():
            out = ref(pixel_values=enc.preprocess(imgs))
            torch.testing.assert_close(enc(imgs), out.image_embeds, atol=ATOL, rtol=1e-4)
            assert enc.embed_dim == out.image_embeds.shape[1] == 16 and enc.arch.num_heads == OFFICIAL[name]["heads"]
            expected = ref.vision_model.post_layernorm(out.last_hidden_state[:, 1:])
            torch.testing.assert_close(enc.spatial_features(imgs).flatten(2).transpose(1, 2), expected,
                                       atol=ATOL, rtol=1e-4)


def test_clip_preprocessing_matches_transformers_processor():
    """CLIP: shorter side to 224 (bicubic), centre crop 224, CLIP mean/std."""
    from vfmbench.encoders.base import apply_preprocessing, view_preprocessing
    from vfmbench.encoders.vit import CLIP_MEAN, CLIP_STD

    imgs = images(1, 120, 160)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc = transformers.CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
        ref = proc(images=imgs[0].numpy(), return_tensors="pt")["pixel_values"]
    ours = apply_preprocessing(imgs, view_preprocessing(224, 1.0, "bicubic", CLIP_MEAN, CLIP_STD))
    assert (ours - ref).abs().mean() < 0.01


# --------------------------------------------------------------------------------------- MAE / MVP

def to_timm_vit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ViTMAEModel keys -> MAE/timm ViT keys."""
    rules = [
        (r"^embeddings\.cls_token$", "cls_token"),
        (r"^embeddings\.position_embeddings$", "pos_embed"),
        (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
        (r"^layers\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
        (r"^layers\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
        (r"^layers\.(\d+)\.attention\.o_proj\.", r"blocks.\1.attn.proj."),
        (r"^layers\.(\d+)\.attention\.", r"blocks.\1.attn."),
        (r"^layers\.(\d+)\.mlp\.", r"blocks.\1.mlp."),
        (r"^layernorm\.", "norm."),
    ]
    return fuse_qkv(remap(state, rules), ".q_proj.", ".k_proj.", ".v_proj.", ".qkv.")


def mae_parity(enc, ref, imgs) -> None:
    """`enc` against ViTMAEModel `ref` on `imgs`: the CLS embedding and the patch grid."""
    with torch.no_grad():
        out = ref(pixel_values=enc.preprocess(imgs))  # the reference shuffles patches at random
        h = out.last_hidden_state
        torch.testing.assert_close(enc(imgs), h[:, 0], atol=ATOL, rtol=1e-4)
        restore = out.ids_restore.unsqueeze(-1).expand(-1, -1, h.shape[-1])
        patches = torch.gather(h[:, 1:], 1, restore)
        torch.testing.assert_close(enc.spatial_features(imgs).flatten(2).transpose(1, 2), patches,
                                   atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("name", ["mae_vitb16", "mvp_vits16", "mvp_vitb16", "mae_vitl16"])
def test_mae_and_mvp_checkpoints_match_transformers_vitmae(name, tmp_path):
    ref = randomize_(transformers.ViTMAEModel(reference_config(name)), seed=3)
    official = to_timm_vit(ref.state_dict())
    # MAE pre-training checkpoints carry the decoder; MVP's training script stores its args.
    official.update({"mask_token": torch.zeros(1, 1, TINY), "decoder_embed.weight": torch.randn(16, TINY)})
    torch.save({"model": official, "epoch": 1, "args": argparse.Namespace(model="vit")}, tmp_path / "mae.pth")
    ref.save_pretrained(tmp_path / "hub")
    imgs = images()
    for weights in ("mae.pth", "hub"):
        mae_parity(create_encoder(name, weights=tmp_path / weights, tiny=True), ref, imgs)


def test_peaked_weights_expose_a_wrong_head_count(tmp_path):
    """A head count is in no tensor's shape: MVP ViT-S/16 built with 6 heads (timm's ViT-S) loads MVP's
    12-head weights without error. With std-0.02 weights the attention is near-uniform and the wrong
    model's embedding is within 1% of the right one (a relative-error parity check passes); with
    `randomize_`'s peaked weights it is far off and the parity check fails."""
    config = reference_config("mvp_vits16")
    config._attn_implementation = "eager"  # to read the attention probabilities
    right = create_encoder("mvp_vits16", pretrained=False, tiny=True)
    assert right.arch.num_heads == config.num_attention_heads == 12
    wrong = MaeEncoder("mvp_vits16", "mvp", replace(right.arch, num_heads=6), right.preprocessing, pooling="cls")
    imgs = images()
    rel, peak = {}, {}
    for init in ("std002", "peaked"):
        ref = randomize_(transformers.ViTMAEModel(config), seed=3, init=init)
        for enc in (right, wrong):
            enc.model.load_state_dict(ref.state_dict())
        with torch.no_grad():
            out = ref(pixel_values=right.preprocess(imgs), output_attentions=True)
            peak[init] = float(torch.stack(out.attentions).amax(-1).mean())  # 5 tokens: uniform is 0.2
            z_right, z_wrong = right(imgs), wrong(imgs)
        rel[init] = float((z_wrong - z_right).norm() / z_right.norm())
        mae_parity(right, ref, imgs)  # the right head count matches either way
        if init == "peaked":
            with pytest.raises(AssertionError):
                mae_parity(wrong, ref, imgs)
    assert peak["std002"] < 0.25 < 0.6 < peak["peaked"], peak
    assert rel["std002"] < 0.01 and rel["peaked"] > 0.2, rel


# ------------------------------------------------------------------------------------------ ResNets

def torchvision_state(depth: int, seed: int, num_classes: int | None = 1000) -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's ResNet layout (shapes from a meta-device model: no init cost)."""
    with torch.device("meta"):
        shapes = ResNetTrunk(depth, num_classes=num_classes).state_dict()
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in shapes.items():
        if not v.dtype.is_floating_point:
            state[k] = torch.zeros(v.shape, dtype=v.dtype)
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(v.shape, generator=g) * (0.2 if v.ndim < 2 else (2.0 / v[0].numel()) ** 0.5)
            if re.search(r"bn\d\.weight$|downsample\.1\.weight$", k):
                state[k] += 1.0
    return state


def reference_resnet(state: dict[str, torch.Tensor], depth: int, fc: bool) -> ResNetTrunk:
    with torch.device("meta"):
        trunk = ResNetTrunk(depth, num_classes=state["fc.weight"].shape[0] if fc else None)
    trunk.load_state_dict({k: v for k, v in state.items() if fc or not k.startswith("fc.")}, assign=True)
    return trunk.eval()


def test_imagenet_resnet_torchvision_layout(tmp_path):
    state = torchvision_state(18, 4)
    torch.save(state, tmp_path / "resnet18.pth")
    enc = create_encoder("imagenet_resnet18", weights=tmp_path / "resnet18.pth", tiny=True)
    imgs = images()
    ref = reference_resnet(state, 18, fc=False)
    with torch.no_grad():
        x = enc.preprocess(imgs)
        torch.testing.assert_close(enc(imgs), ref(x).mean(dim=(2, 3)), atol=ATOL, rtol=1e-4)
    assert enc.embed_dim == 512


@pytest.mark.parametrize("name,depth,key,fc_out", [("r3m_resnet18", 18, "r3m", None), ("vip_resnet50", 50, "vip", 1024)])
def test_r3m_and_vip_checkpoint_layouts(name, depth, key, fc_out, tmp_path):
    """R3M/VIP ``model.pt``: ``{key: {"module.convnet.*": ...}}``; input [0, 255], normalised inside."""
    state = torchvision_state(depth, 5, num_classes=fc_out)
    ckpt = {f"module.convnet.{k}": v for k, v in state.items()}
    if key == "r3m":  # R3M's language head: dropped, as R3M's own loader does (VIP has none)
        ckpt.update({"module.lang_enc.weight": torch.randn(3), "module.lang_rew.pred.0.weight": torch.randn(2, 3)})
    torch.save({key: ckpt, "global_step": 10}, tmp_path / "model.pt")
    enc = create_encoder(name, weights=tmp_path / "model.pt", tiny=True)
    imgs = images()
    ref = reference_resnet(state, depth, fc=fc_out is not None)
    with torch.no_grad():
        x = enc.preprocess(imgs)
        assert x.max() > 2.0  # [0, 255] pixels, as the official module receives them
        normed = (x / 255.0 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        feats = ref(normed)
        torch.testing.assert_close(enc.spatial_features(imgs), feats, atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(enc(imgs), ref.fc(feats.mean(dim=(2, 3))), atol=ATOL, rtol=1e-4)
    assert enc.embed_dim == (fc_out or 512)
