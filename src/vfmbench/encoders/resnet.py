"""A torchvision-compatible ResNet (same module names and state-dict keys), without torchvision.

torchvision's PyPI wheels need a CUDA torch, so vfmbench carries this small implementation;
ImageNet, R3M and VIP checkpoints load into it unchanged (after stripping their prefixes).
Options: BatchNorm or GroupNorm, global average pooling or spatial softmax.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder, Preprocessing
from vfmbench.encoders.layers import SpatialSoftmax, group_norm

NormFactory = Callable[[int], nn.Module]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None, norm: NormFactory):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None, norm: NormFactory):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # stride on 3x3 (torchvision v1.5)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_LAYERS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
}


class ResNetTrunk(nn.Module):
    """conv1 ... layer4 with torchvision's names; ``fc`` kept (identity by default) for key parity."""

    def __init__(self, depth: int, norm: NormFactory = nn.BatchNorm2d, num_classes: int | None = None):
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        block, layers = RESNET_LAYERS[depth]
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, norm)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, norm)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, norm)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, norm)
        self.out_channels = 512 * block.expansion
        self.fc: nn.Module = nn.Linear(self.out_channels, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int, norm: NormFactory) -> nn.Sequential:
        expansion = block.expansion  # type: ignore[attr-defined]
        downsample = None
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * expansion, 1, stride, bias=False), norm(planes * expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample, norm)]
        self.inplanes = planes * expansion
        layers += [block(self.inplanes, planes, 1, None, norm) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, C, H/32, W/32]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNetEncoder(Encoder):
    """ResNet trunk + global average pooling (+ the checkpoint's ``fc`` if it has one)."""

    family = "resnet"

    def __init__(self, name: str, depth: int, preprocessing: Preprocessing, *, trainable: bool = False,
                 pretrained: bool = False, weights_id: str = "none", norm: NormFactory = nn.BatchNorm2d,
                 fc_out: int | None = None):
        super().__init__()
        self.name, self.trainable, self.pretrained, self.weights_id = name, trainable, pretrained, weights_id
        self.preprocessing = preprocessing
        self.trunk = ResNetTrunk(depth, norm=norm, num_classes=fc_out)
        self.embed_dim = fc_out or self.trunk.out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.trunk.fc(features.mean(dim=(2, 3)))


class SpatialSoftmaxResNet(Encoder):
    """Diffusion Policy's end-to-end encoder (paper 001 §III-B2): ResNet with GroupNorm and a
    spatial-softmax head (32 keypoints) followed by a linear layer to ``embed_dim``."""

    family = "resnet"

    def __init__(self, name: str, depth: int = 18, num_kp: int = 32, embed_dim: int = 64, seed: int | None = None):
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        self.name, self.trainable, self.pretrained = name, True, False
        self.weights_id = "trained"
        self.preprocessing = Preprocessing(scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.trunk = ResNetTrunk(depth, norm=group_norm)
        self.keypoints = SpatialSoftmax(self.trunk.out_channels, num_kp)
        self.proj = nn.Linear(2 * num_kp, embed_dim)
        self.embed_dim = embed_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.keypoints(features))
