"""The foundation-model zoo: registry entries, random-weight builds, weights errors, poolings, CLI."""

from __future__ import annotations

import argparse
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
    assert "vfmbench weights download imagenet_resnet18" in str(exc.value)


def test_unloadable_checkpoint_without_published_checksum_is_an_error(home):
    path = weights_path(get_encoder_spec("r3m_resnet50").weights)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="could not be loaded") as exc:
        create_encoder("r3m_resnet50")
    assert "vfmbench weights download r3m_resnet50" in str(exc.value) and "r3m_50.pt" in str(exc.value)


def test_wrong_architecture_lists_the_mismatching_keys(tmp_path):
    from vfmbench.encoders.resnet import ResNetTrunk

    torch.save(ResNetTrunk(18).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match="(missing keys|shape mismatches)"):
        create_encoder("r3m_resnet50", weights=tmp_path / "r18.pth", tiny=True)


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
    assert clip_cls.embed_dim == 32


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
    assert rows["sam_vit_b"]["used_by"] == ["encoder sam_vit_b"]
    spec = get_encoder_spec("imagenet_resnet18").weights
    code, out = run_cli(weights, ["weights", "path", "imagenet_resnet18"], capsys)
    assert out.strip() == str(weights_path(spec))
    code, out = run_cli(weights, ["weights", "verify"], capsys)
    assert code == 0 and "no installed weights" in out
    path = weights_path(spec)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"corrupt")
    code, out = run_cli(weights, ["weights", "verify", "imagenet_resnet18", "r3m_resnet50"], capsys)
    assert code == 1 and "FAILED" in out and "MISSING" in out
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
