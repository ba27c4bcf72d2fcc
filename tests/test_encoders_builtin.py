import torch

from vfmbench.encoders import create_encoder, encoder_label
from vfmbench.encoders.layers import SpatialSoftmax
from vfmbench.encoders.resnet import ResNetTrunk


def test_builtin_encoders_embed_uint8_batches():
    x = torch.randint(0, 256, (2, 84, 84, 3), dtype=torch.uint8)
    for name, dim in [("e2e_cnn", 64), ("e2e_resnet18", 64), ("random_resnet18", 512)]:
        enc = create_encoder(name)
        assert enc(x).shape == (2, dim) and enc.embed_dim == dim
        assert enc.spatial_features(x).ndim == 4
    assert create_encoder("state", input_dim=7)(torch.ones(3, 7)).shape == (3, 7)


def test_random_baseline_is_reproducible_and_frozen():
    a, b = create_encoder("random_resnet18"), create_encoder("random_resnet18")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not any(p.requires_grad for p in a.parameters()) and not a.trainable
    assert encoder_label(a) == "random_resnet18"
    assert encoder_label(a, {"b": 2, "a": "x"}) == "random_resnet18 (a=x, b=2)"


def test_resnet_state_dict_keys_match_torchvision_layout():
    keys = set(ResNetTrunk(18).state_dict())
    for k in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
              "layer2.0.downsample.1.weight", "layer4.1.bn2.bias"]:
        assert k in keys
    keys50 = set(ResNetTrunk(50).state_dict())
    assert "layer1.0.conv3.weight" in keys50 and "layer4.2.bn3.weight" in keys50
    n18 = sum(p.numel() for p in ResNetTrunk(18).parameters())
    assert n18 == 11_176_512  # torchvision resnet18 without fc


def test_spatial_softmax_finds_the_peak():
    ss = SpatialSoftmax(1, num_kp=1)
    with torch.no_grad():
        ss.conv.weight.fill_(1.0)
        ss.conv.bias.zero_()
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 2, 6] = 50.0  # row 2, column 6
    kp = ss(x)[0]
    assert torch.allclose(kp, torch.tensor([0.5, -0.5]), atol=1e-3)
