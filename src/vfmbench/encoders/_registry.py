"""Encoder registry: `create_encoder(name, pretrained=...)`, `list_encoders()`.

Each entry says how to build the encoder, its embedding size, whether it trains with the
policy, and (for pretrained models) its weight set: the `WeightsSpec` registered in
`vfmbench.weights.WEIGHTS`. Unknown names list the valid ones; an option an entry does not take
names the options it takes (`encoder_options`, read from the entry's builder).
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
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


# Arguments the registry passes itself, never options: `pretrained`, the task's `input_dim`, the entry's `name`.
_OWN_ARGUMENTS = frozenset({"pretrained", "input_dim", "name"})


def _forwarded(fn: Callable[..., Any], varkw: str) -> list[tuple[Callable[..., Any], int, frozenset[str]]] | None:
    """The calls in `fn`'s source that pass its ``**varkw`` on: (callee, positional arguments given,
    keywords given); None when a callee cannot be resolved (a method, a computed callable)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        names = inspect.getclosurevars(fn)
    except (OSError, TypeError, SyntaxError):
        return None
    scope = {**names.builtins, **names.globals, **names.nonlocals}
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and any(k.arg is None and isinstance(k.value, ast.Name) and k.value.id == varkw
                                              for k in node.keywords):
            if not isinstance(node.func, ast.Name) or not callable(scope.get(node.func.id)):
                return None
            calls.append((scope[node.func.id], len(node.args), frozenset(k.arg for k in node.keywords if k.arg)))
    return calls or None


def _option_defaults(fn: Callable[..., Any], positional: int = 0,
                     given: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """Keyword options `fn` takes when called with `positional` arguments and the keywords `given`,
    with their defaults: its parameters that have a default (a ``functools.partial``'s own keywords
    are settings of the entry, options only where the function has a default for them), and where
    it passes ``**kwargs`` on, the options of what it passes them to. None when that cannot be read."""
    if isinstance(fn, functools.partial):
        return _option_defaults(fn.func, positional + len(fn.args), given)
    params = list(inspect.signature(fn).parameters.values())
    options = {p.name: p.default for i, p in enumerate(params)
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty
               and not (p.kind is p.POSITIONAL_OR_KEYWORD and i < positional) and p.name not in given}
    varkw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
    if varkw is not None:
        calls = _forwarded(fn, varkw)
        if calls is None:
            return None
        for callee, n, keywords in calls:
            inner = _option_defaults(callee, n, keywords)
            if inner is None:
                return None
            options = {**inner, **options}
    return {k: v for k, v in options.items() if k not in _OWN_ARGUMENTS}


def encoder_options(name: str) -> tuple[str, ...] | None:
    """The option names encoder `name` takes (``create_encoder(name, **options)``, a run config's
    ``encoder_options``), sorted; None when its builder does not say (then a wrong option is
    reported when the builder refuses it)."""
    options = _option_defaults(get_encoder_spec(name).builder)
    return None if options is None else tuple(sorted(options))


def installed_encoders() -> list[str]:
    """The registry's pretrained entries whose weights are installed, in registry order."""
    return [n for n in list_encoders() if (s := get_encoder_spec(n)).weights is not None
            and s.weights_status() == "installed"]


def with_installed_encoders(names: list[str]) -> list[str]:
    """`names` followed by the installed pretrained entries not among them (`installed_encoders`):
    the encoder axis of a grid or demo with ``include_installed``."""
    return list(names) + [n for n in installed_encoders() if n not in names]


def check_encoder_options(name: str, options: dict[str, Any]) -> None:
    """`ConfigError` when `options` has a key encoder `name` does not take (`create_encoder` checks
    this; configs call it before any work). Values are checked when the encoder is built."""
    if not options:
        return
    accepted = encoder_options(name)
    unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
    if unknown:
        raise ConfigError(f"encoder {name!r}: bad encoder_options: no option {', '.join(map(repr, unknown))}; its "
                          f"options: {', '.join(accepted or ()) or 'none'} (docs/encoders.md)")


def create_encoder(name: str, pretrained: bool | None = None, input_dim: int | None = None, **kwargs: Any) -> Encoder:
    """Build encoder `name`.

    pretrained: None means "pretrained if the entry has weights"; True requires the weights
    file (a clear error if missing, never a silent fallback); False gives random weights,
    labelled ``random`` in results. input_dim: the width of the encoder's input vector, for
    entries whose embedding size depends on the task (``embed_dim`` None, e.g. `state`);
    ignored by image encoders. Other keyword arguments are the entry's options (`encoder_options`);
    one it does not take is a ConfigError naming it and the options it takes.
    """
    spec = get_encoder_spec(name)
    check_encoder_options(name, kwargs)
    if pretrained is None:
        pretrained = spec.weights is not None
    if pretrained and spec.weights is None:
        raise ConfigError(f"encoder {name!r} has no pretrained weights (it is trained end to end or random by "
                          "definition); do not ask for them")
    if spec.embed_dim is None:
        if input_dim is None:
            raise ConfigError(f"encoder {name!r} takes the task's {spec.input_key!r} vector: give its input_dim")
        kwargs["input_dim"] = input_dim
    try:
        return spec.builder(pretrained=pretrained, **kwargs)
    except TypeError as exc:  # a value of the wrong type (or an option of a builder that does not list its own)
        raise ConfigError(f"encoder {name!r}: bad encoder_options {kwargs} ({exc}); see docs/encoders.md for "
                          "each entry's options") from None


def encoder_label(encoder: Encoder, options: dict[str, Any] | None = None) -> str:
    """Name for tables: pretrained-model entries built with random weights get a ``(random)`` tag,
    and the encoder options a run was given (`options`, e.g. a config's ``encoder_options``) are
    named, sorted, unless given at their default value: ``dinov2_vitb14 (random, pooling=mean)``,
    so that runs of one encoder with different options are never pooled into one row, nor runs
    of the same settings split into two."""
    spec = ENCODERS.get(encoder.name) if encoder.name in ENCODERS else None
    tags = ["random"] if spec is not None and spec.weights is not None and not encoder.pretrained else []
    defaults = (_option_defaults(spec.builder) or {}) if spec is not None else {}
    tags += [f"{k}={v}" for k, v in sorted((options or {}).items()) if k not in defaults or defaults[k] != v]
    return f"{encoder.name} ({', '.join(tags)})" if tags else encoder.name
