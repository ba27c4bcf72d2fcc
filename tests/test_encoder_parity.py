"""Parity of the zoo encoders with their reference implementations, through official checkpoint formats.

Each test builds a reference model (`transformers`) with random weights, writes those weights in
the official format (segment-anything ``.pth``, DINOv2 ``*_pretrain.pth``, OpenAI's TorchScript
``.pt``, open_clip state dicts, MAE/MVP ``.pth``, hub ``save_pretrained`` folders, torchvision /
R3M / VIP state dicts), loads them through the real loader and compares outputs. The key maps
written here go from the reference layout to the official one, independently of the loaders'.
Tiny sizes by default; full sizes are ``slow``.
"""

from __future__ import annotations

import argparse
import re
import warnings

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from vfmbench.encoders import create_encoder  # noqa: E402
from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vfmbench.encoders.resnet import ResNetTrunk  # noqa: E402
from vfmbench.encoders.sam import SAM_ARCHS  # noqa: E402
from vfmbench.weights import sha256_file  # noqa: E402

ATOL = 1e-4


def randomize_(module: nn.Module, seed: int = 0, std: float = 0.2) -> nn.Module:
    """Overwrite every floating parameter and buffer with noise: norm scales around 1, running
    variances positive, the rest N(0, std) (large enough that attention is far from uniform, so a
    swapped q/k would show)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            noise = torch.randn(t.shape, generator=g) * std
            if name.endswith("running_var"):
                noise = noise.abs() + 0.5
            elif re.search(r"(norm|layer_scale|bn)[^.]*\.(weight|lambda1)$", name):
                noise = noise + 1.0
            t.copy_(noise)
    return module.eval()


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

def sam_reference(arch_name: str = "tiny", seed: int = 0):
    cfg = transformers.SamConfig(vision_config=SAM_ARCHS[arch_name].config().to_dict())
    model = transformers.SamModel(cfg)
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


def check_sam(name: str, arch_name: str, tiny: bool, tmp_path, n_images: int = 2) -> None:
    ref = sam_reference(arch_name)
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


def test_sam_official_checkpoint_matches_transformers_sam(tmp_path):
    check_sam("sam_vit_b", "tiny", True, tmp_path)


def test_sam_hub_folder_matches_official_checkpoint(tmp_path):
    ref = sam_reference()
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
    check_sam("sam_vit_b", "vit_b", False, tmp_path, n_images=1)


# ------------------------------------------------------------------------------------------ DINOv2

def dinov2_reference(enc) -> nn.Module:
    cls = transformers.Dinov2WithRegistersModel if enc.arch.num_registers else transformers.Dinov2Model
    return randomize_(cls(enc.hf_config(enc.arch)), seed=1)


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


@pytest.mark.parametrize("name", ["dinov2_vitb14_reg", "dinov2_vits14"])
def test_dinov2_official_and_hub_checkpoints_match_transformers(name, tmp_path):
    template = create_encoder(name, pretrained=False, tiny=True)
    ref = dinov2_reference(template)
    torch.save(to_dinov2_official(ref.state_dict()), tmp_path / "dinov2_pretrain.pth")
    ref.save_pretrained(tmp_path / "hub")
    imgs = images()
    regs = template.arch.num_registers
    for weights in (tmp_path / "dinov2_pretrain.pth", tmp_path / "hub"):
        enc = create_encoder(name, weights=weights, tiny=True)
        with torch.no_grad():
            h = ref(pixel_values=enc.preprocess(imgs)).last_hidden_state
            torch.testing.assert_close(enc(imgs), h[:, 0], atol=ATOL, rtol=1e-4)
            grid = enc.spatial_features(imgs)
            assert grid.shape == (2, 32, 2, 2)
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


class _Holder(nn.Module):
    """Parameters under arbitrary dotted names, to write a TorchScript archive like OpenAI's."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        for key, value in state.items():
            mod = self
            *path, leaf = key.split(".")
            for part in path:
                if not hasattr(mod, part):
                    mod.add_module(part, nn.Module())
                mod = getattr(mod, part)
            mod.register_buffer(leaf, value.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_clip_openai_torchscript_open_clip_and_hub_match_transformers(tmp_path):
    template = create_encoder("clip_vitb16", pretrained=False, tiny=True)
    ref = randomize_(transformers.CLIPVisionModelWithProjection(template.hf_config(template.arch)), seed=2)
    official = to_openai_clip(ref.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(_Holder(official)), str(tmp_path / "ViT-B-16.pt"))
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in official.items()}},
               tmp_path / "open_clip_pytorch_model.bin")
    ref.save_pretrained(tmp_path / "hub")
    imgs = images()
    for weights in ("ViT-B-16.pt", "open_clip_pytorch_model.bin", "hub"):
        enc = create_encoder("clip_vitb16", weights=tmp_path / weights, tiny=True)
        with torch.no_grad():
            out = ref(pixel_values=enc.preprocess(imgs))
            torch.testing.assert_close(enc(imgs), out.image_embeds, atol=ATOL, rtol=1e-4)
            assert enc.embed_dim == out.image_embeds.shape[1] == 16
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


@pytest.mark.parametrize("name", ["mae_vitb16", "mvp_vits16"])
def test_mae_and_mvp_checkpoints_match_transformers_vitmae(name, tmp_path):
    template = create_encoder(name, pretrained=False, tiny=True)
    ref = randomize_(transformers.ViTMAEModel(template.hf_config(template.arch)), seed=3)
    official = to_timm_vit(ref.state_dict())
    # MAE pre-training checkpoints carry the decoder; MVP's training script stores its args.
    official.update({"mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.randn(16, 32)})
    torch.save({"model": official, "epoch": 1, "args": argparse.Namespace(model="vit")}, tmp_path / "mae.pth")
    ref.save_pretrained(tmp_path / "hub")
    imgs = images()
    for weights in ("mae.pth", "hub"):
        enc = create_encoder(name, weights=tmp_path / weights, tiny=True)
        with torch.no_grad():
            out = ref(pixel_values=enc.preprocess(imgs))  # the reference shuffles patches at random
            h = out.last_hidden_state
            torch.testing.assert_close(enc(imgs), h[:, 0], atol=ATOL, rtol=1e-4)
            restore = out.ids_restore.unsqueeze(-1).expand(-1, -1, h.shape[-1])
            patches = torch.gather(h[:, 1:], 1, restore)
            torch.testing.assert_close(enc.spatial_features(imgs).flatten(2).transpose(1, 2), patches,
                                       atol=ATOL, rtol=1e-4)


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
    ckpt["module.lang_enc.weight"] = torch.randn(3)  # R3M's language head: ignored
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
