"""Encoder registry: `create_encoder(name, pretrained=...)`, `list_encoders()`.

Each entry says how to build the encoder, its embedding size, whether it trains with the
policy, and (for pretrained models) its weight set: the `WeightsSpec` registered in
`vfmbench.weights.WEIGHTS`. Unknown names list the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vfmbench.encoders.base import Encoder
from vfmbench.registry import Registry
from vfmbench.utils.errors import ConfigError
from vfmbench.weights import WeightsSpec


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder.

    builder(pretrained, **kwargs) returns the Encoder. ``embed_dim`` is None where it depends
    on the task (the `state` pseudo-encoder). ``weights`` is the entry's weight set (registered
    in `vfmbench.weights.WEIGHTS`), None for encoders without pretrained weights (trained end to
    end, or random by definition).
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
        return self.weights.status()

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


ENCODERS: Registry[EncoderSpec] = Registry("encoder")
register_encoder = ENCODERS.register
list_encoders = ENCODERS.names
get_encoder_spec = ENCODERS.get


def create_encoder(name: str, pretrained: bool | None = None, input_dim: int | None = None, **kwargs: Any) -> Encoder:
    """Build encoder `name`.

    pretrained: None means "pretrained if the entry has weights"; True requires the weights
    file (a clear error if missing, never a silent fallback); False gives random weights,
    labelled ``random`` in results. input_dim: the width of the encoder's input vector, for
    entries whose embedding size depends on the task (``embed_dim`` None, e.g. `state`);
    ignored by image encoders. Other keyword arguments are the entry's options.
    """
    spec = get_encoder_spec(name)
    if pretrained is None:
        pretrained = spec.weights is not None
    if pretrained and spec.weights is None:
        raise ConfigError(f"encoder {name!r} has no pretrained weights; use pretrained=False")
    if spec.embed_dim is None:
        if input_dim is None:
            raise ConfigError(f"encoder {name!r} takes the task's {spec.input_key!r} vector: give its input_dim")
        kwargs["input_dim"] = input_dim
    try:
        return spec.builder(pretrained=pretrained, **kwargs)
    except TypeError as exc:  # an option the entry does not take, or a value of the wrong type
        raise ConfigError(f"encoder {name!r}: bad encoder_options {sorted(kwargs)} ({exc}); see docs/encoders.md "
                          "for each entry's options") from None


def encoder_label(encoder: Encoder) -> str:
    """Name for tables: pretrained-model entries built with random weights get a ``(random)`` tag."""
    spec = ENCODERS.get(encoder.name) if encoder.name in ENCODERS else None
    if spec is not None and spec.weights is not None and not encoder.pretrained:
        return f"{encoder.name} (random)"
    return encoder.name
