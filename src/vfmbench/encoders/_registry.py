"""Encoder registry: `create_encoder(name, pretrained=...)`, `list_encoders()`.

Each entry says how to build the encoder, its embedding size, whether it trains with the
policy, and (for pretrained models) its `WeightsSpec`. Unknown names list the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vfmbench.encoders._weights import WeightsSpec, weights_path
from vfmbench.encoders.base import Encoder
from vfmbench.utils.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder.

    builder(pretrained, **kwargs) returns the Encoder. ``embed_dim`` is None where it depends
    on the task (the `state` pseudo-encoder). ``weights`` is None for encoders without
    pretrained weights (trained end to end, or random by definition).
    """

    name: str
    family: str
    description: str
    builder: Callable[..., Encoder]
    embed_dim: int | None
    trainable: bool = False
    weights: WeightsSpec | None = None
    input_key: str = "pixels"
    paper: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def weights_status(self) -> str:
        """'installed', 'missing', or 'none' (no pretrained weights exist for this entry)."""
        if self.weights is None:
            return "none"
        return "installed" if weights_path(self.name, self.weights).exists() else "missing"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "embed_dim": self.embed_dim,
            "trainable": self.trainable,
            "input": self.input_key,
            "weights": self.weights_status(),
            "weights_source": self.weights.source if self.weights else None,
            "license": self.weights.license if self.weights else None,
            "description": self.description,
        }


_ENCODERS: dict[str, EncoderSpec] = {}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    if spec.name in _ENCODERS:
        raise ValueError(f"encoder {spec.name!r} registered twice")
    _ENCODERS[spec.name] = spec
    return spec


def list_encoders() -> list[str]:
    """Names of all registered encoders."""
    return sorted(_ENCODERS)


def get_encoder_spec(name: str) -> EncoderSpec:
    if name not in _ENCODERS:
        raise unknown_name("encoder", name, list(_ENCODERS))
    return _ENCODERS[name]


def create_encoder(name: str, pretrained: bool | None = None, **kwargs: Any) -> Encoder:
    """Build encoder `name`.

    pretrained: None means "pretrained if the entry has weights"; True requires the weights
    file (a clear error if missing, never a silent fallback); False gives random weights,
    labelled ``random`` in results.
    """
    spec = get_encoder_spec(name)
    if pretrained is None:
        pretrained = spec.weights is not None
    if pretrained and spec.weights is None:
        raise ConfigError(f"encoder {name!r} has no pretrained weights; use pretrained=False")
    return spec.builder(pretrained=pretrained, **kwargs)


def encoder_label(encoder: Encoder) -> str:
    """Name for tables: pretrained-model entries built with random weights get a ``(random)`` tag."""
    spec = _ENCODERS.get(encoder.name)
    if spec is not None and spec.weights is not None and not encoder.pretrained:
        return f"{encoder.name} (random)"
    return encoder.name
