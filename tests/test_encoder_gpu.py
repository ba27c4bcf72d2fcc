"""GPU parity against the official or reference implementations that need torchvision.

Run on the GPU machine (torch, torchvision, transformers, timm and the ``segment-anything``
wheel installed)::

    python -m pytest tests/test_encoder_gpu.py -m gpu -q

Each test builds the reference with random weights at full size, saves them in the official
checkpoint format, loads them through vfmbench's loader and compares in float32 (TF32 off). The
references take their sizes and head counts from the official definitions (`OFFICIAL`), and
their query/key weights are scaled up so that attention is peaked: with the usual std-0.02 init
a wrong head count would stay within tolerance (see test_encoder_parity.py).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.gpu

transformers = pytest.importorskip("transformers")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from test_encoder_parity import QK_GAIN, randomize_, reference_config, to_openai_clip  # noqa: E402
from test_encoder_zoo import OFFICIAL  # noqa: E402

from vfmbench.encoders import create_encoder  # noqa: E402
from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

DEVICE = "cuda"


@pytest.fixture(autouse=True)
def exact_float32():
    """Full float32 matmuls and convolutions, so that differences are the implementations'."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A uint8 ``[h, w, 3]`` frame with structure at several scales."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(h // 8, 2), max(w // 8, 2), generator=g)
    big = nn.functional.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    return (big.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@cuda
def test_sam_vit_b_matches_segment_anything(tmp_path):
    """End to end against SamPredictor (PIL resize; within 2%) with segment-anything's own init, then
    the image encoder alone on the same input (2e-4) with peaked attention, where a wrong head count
    or window would show. (Peaked attention also amplifies the ~1 grey level of resizing differences,
    so the end-to-end check keeps the default init.)"""
    segment_anything = pytest.importorskip("segment_anything")
    torch.manual_seed(0)
    sam = segment_anything.sam_model_registry["vit_b"]()  # random weights; no checkpoint
    with torch.no_grad():  # segment-anything starts these at zero; make them matter
        for name, p in sam.image_encoder.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:
                p.normal_(0.0, 0.2)
    torch.save(sam.state_dict(), tmp_path / "sam_vit_b_01ec64.pth")
    sam = sam.to(DEVICE).eval()
    enc = create_encoder("sam_vit_b", weights=tmp_path / "sam_vit_b_01ec64.pth").to(DEVICE)

    # End to end: SamPredictor resizes with PIL on uint8; vfmbench resizes in float on the GPU.
    img = smooth_image(240, 320)
    batch = torch.from_numpy(img)[None].to(DEVICE)
    predictor = segment_anything.SamPredictor(sam)
    predictor.set_image(img)
    resized = torch.as_tensor(predictor.transform.apply_image(img), device=DEVICE).permute(2, 0, 1)[None]
    ref_x = sam.preprocess(resized.float())
    with torch.no_grad():
        x = enc.preprocess(batch)
        feats = enc.spatial_features(batch)
        pooled = enc(batch)
    assert (x - ref_x).abs().mean() < 0.02
    assert rel_err(feats, predictor.features) < 0.02
    expected = nn.functional.adaptive_avg_pool2d(predictor.features, 6).flatten(1)
    assert pooled.shape == (1, 9216) and rel_err(pooled, expected) < 0.02

    with torch.no_grad():  # peaked attention: nn.Linear's init has std 1/sqrt(3 fan_in)
        for block in sam.image_encoder.blocks:
            qkv = block.attn.qkv.weight
            qkv[: 2 * qkv.shape[0] // 3] *= QK_GAIN * math.sqrt(3.0)
    torch.save(sam.state_dict(), tmp_path / "peaked.pth")
    enc = create_encoder("sam_vit_b", weights=tmp_path / "peaked.pth").to(DEVICE)
    with torch.no_grad():
        ref = sam.image_encoder(x)
        ours = enc.forward_features(x)
    assert ours.shape == (1, 256, 64, 64)
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=2e-4)


def _torchvision_resnet(depth: int, seed: int) -> nn.Module:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(seed)
    model = getattr(torchvision.models, f"resnet{depth}")()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_(0.0, 0.1)
    return model


@cuda
def test_imagenet_resnet18_matches_torchvision(tmp_path):
    T = pytest.importorskip("torchvision.transforms")
    model = _torchvision_resnet(18, 0)
    torch.save(model.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    model.fc = nn.Identity()
    model = model.to(DEVICE).eval()
    enc = create_encoder("imagenet_resnet18", weights=tmp_path / "resnet18-f37072fd.pth").to(DEVICE)
    img = torch.from_numpy(smooth_image(240, 320)).to(DEVICE)
    tv = T.Compose([T.Resize(256, antialias=True), T.CenterCrop(224), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    ref_x = tv(img.permute(2, 0, 1)[None].float() / 255.0)
    with torch.no_grad():
        x = enc.preprocess(img[None])
        torch.testing.assert_close(x, ref_x, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(enc.embed(x), model(x), atol=1e-4, rtol=1e-4)


@cuda
@pytest.mark.parametrize("name,key,fc_out", [("r3m_resnet50", "r3m", None), ("vip_resnet50", "vip", 1024)])
def test_r3m_and_vip_match_their_official_forward(name, key, fc_out, tmp_path):
    """R3M/VIP ``forward``: [0, 255] in, /255, (VIP: Resize(256) + CenterCrop(224)), ImageNet normalise, ResNet-50."""
    T = pytest.importorskip("torchvision.transforms")
    model = _torchvision_resnet(50, 1)
    model.fc = nn.Linear(2048, fc_out) if fc_out else nn.Identity()
    state = {f"module.convnet.{k}": v for k, v in model.state_dict().items()}
    torch.save({key: state}, tmp_path / "model.pt")
    model = model.to(DEVICE).eval()
    enc = create_encoder(name, weights=tmp_path / "model.pt").to(DEVICE)

    frame = torch.from_numpy(smooth_image(224, 224)).to(DEVICE).permute(2, 0, 1)[None].float()  # 224 x 224, [0, 255]
    # R3M's official usage resizes to 256 and centre-crops 224 before the model; VIP's forward does it inside.
    official = nn.Sequential(T.Resize(256, antialias=True), T.CenterCrop(224), T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    with torch.no_grad():
        ref = model(official(frame / 255.0))
        ours = enc(frame.permute(0, 2, 3, 1).to(torch.uint8))
    assert ours.shape == (1, fc_out or 2048)
    torch.testing.assert_close(ours, ref, atol=2e-3, rtol=2e-3)


@cuda
@pytest.mark.parametrize("name", ["mae_vitb16", "mvp_vits16"])
def test_mae_and_mvp_match_timm_vision_transformer(name, tmp_path):
    """MAE/MVP checkpoints are timm ViTs under "model"; the embedding is norm(tokens)[:, 0]. The timm
    model is built as MAE's models_vit.py and MVP's backbones/vit.py build theirs (MVP ViT-S: 12 heads)."""
    timm = pytest.importorskip("timm")
    o = OFFICIAL[name]
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=o["image"], patch_size=o["patch"], embed_dim=o["width"], depth=o["depth"], num_heads=o["heads"],
        mlp_ratio=o["mlp_ratio"], qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=o["eps"]), num_classes=0,
        global_pool="token",
    )
    randomize_(vit, seed=2)
    torch.save({"model": vit.state_dict()}, tmp_path / "ckpt.pth")
    vit = vit.to(DEVICE).eval()
    enc = create_encoder(name, weights=tmp_path / "ckpt.pth").to(DEVICE)
    img = torch.from_numpy(smooth_image(240, 320)).to(DEVICE)[None]
    with torch.no_grad():
        x = enc.preprocess(img)
        tokens = vit.forward_features(x)
        torch.testing.assert_close(enc.embed(x), tokens[:, 0], atol=2e-4, rtol=2e-4)
        grid = enc.forward_features(x).flatten(2).transpose(1, 2)
        torch.testing.assert_close(grid, tokens[:, 1:], atol=2e-4, rtol=2e-4)


@cuda
def test_clip_openai_layout_matches_timm_clip(tmp_path):
    """The OpenAI CLIP layout, read by timm's own OpenAI converter, gives the same image embedding."""
    timm = pytest.importorskip("timm")
    from timm.models.vision_transformer import checkpoint_filter_fn

    ref_hf = randomize_(transformers.CLIPVisionModelWithProjection(reference_config("clip_vitb16", tiny=False)), seed=3)
    official = to_openai_clip(ref_hf.state_dict())
    torch.save(official, tmp_path / "ViT-B-16.bin")
    # OpenAI's CLIP uses QuickGELU; timm's "vit_base_patch16_clip_224" uses GELU, its quickgelu twin matches.
    model = timm.create_model("vit_base_patch16_clip_quickgelu_224", pretrained=False, num_classes=512)
    model.load_state_dict(checkpoint_filter_fn(official, model))
    model = model.to(DEVICE).eval()
    enc = create_encoder("clip_vitb16", weights=tmp_path / "ViT-B-16.bin").to(DEVICE)
    img = torch.from_numpy(smooth_image(224, 224)).to(DEVICE)[None]
    with torch.no_grad():
        x = enc.preprocess(img)
        torch.testing.assert_close(enc.embed(x), model(x), atol=2e-4, rtol=2e-4)
