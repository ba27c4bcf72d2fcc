"""FullGrad saliency of a trained policy's action (paper 001 §III-D, Fig. 5).

FullGrad (Srinivas & Fleuret, "Full-Gradient Representation for Neural Network Visualization",
NeurIPS 2019; reference code github.com/idiap/fullgrad-saliency) splits a network's output
``f(x)`` into the input-gradient and the bias-gradients of every layer,

    f(x) = <grad_x f, x> + sum_l <grad_{b_l} f, b_l>        (exact for ReLU networks with biases)

and draws the saliency map

    S(x) = psi(grad_x f * x) + sum_{l spatial} sum_c psi(grad_{b_l} f * b_l)_c,
    psi(t) = upsample_bilinear(rescale_[0,1](|t|))  to the input's size.

Here ``grad_{b_l} f * b_l`` is kept per position: the gradient of `f` with respect to the output
of layer `l` times the layer's (effective) bias broadcast over it, ``[B, C, h, w]``; summing it over
positions gives ``<grad_b f, b>``. The bias-like terms handled (`bias_kind`):

- ``conv``, ``linear``: the layer's own bias.
- ``batchnorm`` (eval mode, running statistics): ``beta - gamma * mean / sqrt(var + eps)``.
- ``groupnorm``, ``layernorm``: the same with the statistics of the current input, held fixed
  (the local affine form ``y = gamma / sigma * x + (beta - gamma * mu / sigma)``).
- ``normalizer``: vfmbench's feature and proprioception normalisers, ``-mean / std``.
- ``clamp``: saturated units of ReLU6 / Hardtanh, whose output is the constant bound there.

As in the reference code, only spatial terms (4-D feature maps) enter the map; all terms enter the
completeness sum (`FullGradDecomposition.total`). Completeness is exact only for piecewise-linear
networks: spatial softmax, SELU, GroupNorm statistics and LSTM cells make it approximate, and
`SaliencyRecord` reports the gap.

For a policy, ``x`` is the encoder's network input (the frame after its preprocessing: resize,
crop, normalisation), the scalar `f` is the L2 norm of the first predicted action (or one action
dimension), and the map is carried back to the frame's pixels through the transpose of the
geometric part of preprocessing (crops leave zeros where the network saw nothing). Token (ViT)
encoders are refused: their bias-gradients live on tokens, not feature maps, and paper 001 Fig. 5
likewise omits the ViT-based MVP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vfmbench.agents.agent import Agent, Normalizer
from vfmbench.encoders.augment import AugmentedEncoder
from vfmbench.encoders.base import Encoder, apply_preprocessing
from vfmbench.encoders.stack import FrameStackEncoder
from vfmbench.analysis.records import md_cell
from vfmbench.utils.errors import ConfigError, DatasetError, VfmbenchError
from vfmbench.utils.io import read_json, write_json_atomic

SCHEMA = "vfmbench.analysis.saliency/1"
RECORD_FILE = "saliency.json"
ARRAYS_FILE = "saliency.npz"
FIGURE_FILE = "saliency.png"

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


class SaliencyError(VfmbenchError):
    """FullGrad cannot be computed for this model (token encoder, non-differentiable action, ...)."""


# ------------------------------------------------------------------------------ the decomposition


@dataclass
class BiasTerm:
    """One layer call's bias-gradient term ``grad_{b} f * b`` kept per output position: the shape
    of the layer's output (``[B, C, h, w]`` for feature maps, ``[B, C]`` or ``[B, ..., C]`` else)."""

    name: str  # module path in the model, "#k" for its k-th call in one forward pass
    kind: str  # conv, linear, batchnorm, groupnorm, layernorm, normalizer, clamp
    value: torch.Tensor

    @property
    def spatial(self) -> bool:
        return self.value.ndim == 4


@dataclass
class FullGradDecomposition:
    """The full-gradient decomposition of a scalar output per sample.

    `output` ``[B]``; `input_term` ``grad_x f * x`` ``[B, C, H, W]``; `bias_terms` per layer call;
    `other_term` ``[B]``: ``sum <grad_z f, z>`` over the model's other inputs (proprioception,
    earlier frames' features, the goal) held fixed."""

    output: torch.Tensor
    input_term: torch.Tensor
    bias_terms: list[BiasTerm]
    other_term: torch.Tensor

    def total(self) -> torch.Tensor:
        """``[B]``: input term + every bias term + other inputs' terms; equals `output` exactly
        for piecewise-linear networks whose bias-like terms are all handled."""
        b = self.output.shape[0]
        total = self.input_term.reshape(b, -1).sum(1) + self.other_term
        for term in self.bias_terms:
            total = total + term.value.reshape(b, -1).sum(1)
        return total

    def saliency(self) -> torch.Tensor:
        """The FullGrad map at the input's resolution, ``[B, H, W]`` (float, >= 0; not rescaled):
        `postprocess` of the input term plus, for every spatial bias term, `postprocess` upsampled
        bilinearly to ``H x W``; each summed over channels (reference code's ``saliency``)."""
        size = self.input_term.shape[-2:]
        total = postprocess(self.input_term).sum(1)
        for term in self.bias_terms:
            if term.spatial:
                up = F.interpolate(postprocess(term.value), size=size, mode="bilinear", align_corners=True)
                total = total + up.sum(1)
        return total


def postprocess(t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """FullGrad's psi before upsampling: ``|t|`` rescaled to [0, 1] per sample over all its
    channels and positions (min subtracted, divided by max + `eps`); shape kept, ``[B, ...]``."""
    t = t.abs()
    flat = t.reshape(t.shape[0], -1)
    view = (-1,) + (1,) * (t.ndim - 1)
    t = t - flat.min(1).values.view(view)
    return t / (t.reshape(t.shape[0], -1).max(1).values.view(view) + eps)


def bias_kind(module: nn.Module) -> str | None:
    """The kind of bias-like term `module` contributes, None when it has none."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.bias is not None:
        return "conv"
    if isinstance(module, nn.Linear) and module.bias is not None:
        return "linear"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        return "batchnorm"
    if isinstance(module, nn.GroupNorm):
        return "groupnorm"
    if isinstance(module, nn.LayerNorm):
        return "layernorm"
    if isinstance(module, Normalizer):
        return "normalizer"
    if isinstance(module, nn.Hardtanh):  # ReLU6 included
        return "clamp"
    return None


def _channel_view(b: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-channel vector ``[C]`` shaped to broadcast over ``[B, C, *spatial]``."""
    return b.reshape(1, -1, *([1] * (ndim - 2)))


def effective_bias(module: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The bias-like term of `module` given its input `x` and output `y`, broadcastable to `y`.

    conv/linear: the bias; batchnorm in eval mode: ``beta - gamma * running_mean / sqrt(running_var
    + eps)`` (statistics of `x` when the layer has no running statistics or is training);
    group/layer norm: ``beta - gamma * mu / sigma`` with `x`'s statistics; normalizer
    ``-mean / std``; clamp: the bound where `y` saturates, else 0."""
    with torch.no_grad():
        if kind == "conv":
            return _channel_view(module.bias, y.ndim)
        if kind == "linear":
            return module.bias
        if kind == "batchnorm":
            bn: nn.modules.batchnorm._BatchNorm = module  # type: ignore[assignment]
            if bn.training or bn.running_mean is None:
                dims = [0, *range(2, x.ndim)]
                mean, var = x.mean(dims), x.var(dims, unbiased=False)
            else:
                mean, var = bn.running_mean, bn.running_var
            gamma = bn.weight if bn.weight is not None else torch.ones_like(mean)
            beta = bn.bias if bn.bias is not None else torch.zeros_like(mean)
            return _channel_view(beta - gamma * mean / torch.sqrt(var + bn.eps), y.ndim)
        if kind == "groupnorm":
            gn: nn.GroupNorm = module  # type: ignore[assignment]
            n, c = x.shape[:2]
            g = x.reshape(n, gn.num_groups, -1)
            mu = g.mean(-1)
            sigma = torch.sqrt(g.var(-1, unbiased=False) + gn.eps)
            ratio = (mu / sigma).repeat_interleave(c // gn.num_groups, dim=1)  # [N, C]
            gamma = gn.weight if gn.weight is not None else torch.ones(c, device=x.device)
            beta = gn.bias if gn.bias is not None else torch.zeros(c, device=x.device)
            return (beta - gamma * ratio).reshape(n, c, *([1] * (x.ndim - 2)))
        if kind == "layernorm":
            ln: nn.LayerNorm = module  # type: ignore[assignment]
            dims = tuple(range(x.ndim - len(ln.normalized_shape), x.ndim))
            mu = x.mean(dims, keepdim=True)
            sigma = torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + ln.eps)
            gamma = ln.weight if ln.weight is not None else 1.0
            beta = ln.bias if ln.bias is not None else 0.0
            return beta - gamma * mu / sigma
        if kind == "normalizer":
            return -module.mean / module.std
        if kind == "clamp":
            ht: nn.Hardtanh = module  # type: ignore[assignment]
            # autograd passes no gradient at or beyond the bounds: there the output is the constant
            return torch.where(y <= ht.min_val, ht.min_val, torch.where(y >= ht.max_val, ht.max_val, 0.0))
    raise ValueError(f"unknown bias kind {kind!r}")


@contextlib.contextmanager
def _capture(root: nn.Module) -> Iterator[list[tuple[str, str, torch.Tensor, torch.Tensor]]]:
    """Forward hooks on every bias-carrying module under `root`: each call appends
    ``(name, kind, output, effective bias)`` and hands a clone on, so a later in-place operation
    (``ReLU(inplace=True)``) cannot turn the captured tensor into another layer's output."""
    calls: list[tuple[str, str, torch.Tensor, torch.Tensor]] = []
    counts: dict[str, int] = {}
    handles = []
    for name, module in root.named_modules():
        kind = bias_kind(module)
        if kind is None:
            continue

        def hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any, name: str = name, kind: str = kind) -> Any:
            if not isinstance(output, torch.Tensor) or not output.requires_grad:
                return None  # not on the path from the input (e.g. a layer of a frozen branch)
            k = counts.get(name, 0)
            counts[name] = k + 1
            bias = effective_bias(mod, kind, inputs[0], output)
            calls.append((f"{name}#{k}" if k else name, kind, output, bias))
            return output.clone()

        handles.append(module.register_forward_hook(hook))
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def full_gradient(forward: Callable[..., torch.Tensor], x: torch.Tensor, root: nn.Module,
                  others: Sequence[torch.Tensor] = (), group: int = 1) -> FullGradDecomposition:
    """The full-gradient decomposition of ``forward(x, *others) -> [B]`` at `x` ``[B*group, C, H, W]``.

    Bias-like terms come from every module under `root` (`bias_kind`) that the forward pass
    calls on the path from `x` or `others`. `others` are further inputs held fixed (their term
    ``<grad_z f, z>`` enters the completeness sum, not the map). `group` > 1: `x` holds `group`
    images per sample (stacked frames encoded one by one), whose terms are regrouped per sample,
    ``[B, group*C, h, w]``. Raises `SaliencyError` when the output does not depend differentiably
    on `x`, or a layer of the image path returns tokens (``[B, N, C]``) rather than feature maps."""
    x = x.detach().requires_grad_(True)
    others = [o.detach().requires_grad_(True) for o in others]
    with _capture(root) as calls:
        out = forward(x, *others)
    if out.ndim != 1:
        raise ValueError(f"full_gradient: forward must return one scalar per sample [B], got {tuple(out.shape)}")
    if not out.requires_grad:
        raise SaliencyError("the output does not depend differentiably on the image (it is computed without "
                            "gradients); FullGrad needs gradients of the output")
    b = out.shape[0]
    if x.shape[0] != b * group:
        raise ValueError(f"full_gradient: {x.shape[0]} images for {b} outputs with group {group}")
    grads = torch.autograd.grad(out.sum(), [x, *others, *(c[2] for c in calls)], allow_unused=True)
    gx, g_others, g_calls = grads[0], grads[1 : 1 + len(others)], grads[1 + len(others):]
    if gx is None:
        raise SaliencyError("the output does not depend on the image; FullGrad has nothing to show")
    input_term = (gx * x).detach().reshape(b, -1, *x.shape[2:])
    other = torch.zeros(b, device=x.device)
    for g, o in zip(g_others, others):
        if g is not None:
            other = other + (g * o).detach().reshape(b, -1).sum(1)
    terms = []
    for (name, kind, y, bias), g in zip(calls, g_calls):
        if g is None:
            continue
        value = (g * bias).detach()
        if y.shape[0] == b * group and group > 1:
            value = value.reshape(b, -1, *value.shape[2:])
        terms.append(BiasTerm(name, kind, value))
    return FullGradDecomposition(out.detach(), input_term, terms, other)


# ------------------------------------------------------------------------------ a policy's action


@dataclass(frozen=True)
class Target:
    """The scalar FullGrad explains: ``"norm"``, the L2 norm of the first action the policy
    predicts (of a chunk, the one executed now), or ``"action[i]"``, its dimension ``i``."""

    dim: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Target":
        """``norm`` or a whole number (an action dimension); `ConfigError` otherwise."""
        if text == "norm":
            return cls(None)
        try:
            dim = int(text)
        except ValueError:
            raise ConfigError(f"saliency target must be 'norm' or an action dimension (0, 1, ...), got {text!r}") from None
        if dim < 0:
            raise ConfigError(f"saliency target: the action dimension must be 0 or more, got {dim}")
        return cls(dim)

    def __str__(self) -> str:
        return "norm" if self.dim is None else f"action[{self.dim}]"

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """``[B, K, A]`` predicted actions -> ``[B]``."""
        first = actions[:, 0]
        if self.dim is None:
            return first.norm(dim=-1)
        if self.dim >= first.shape[-1]:
            raise ConfigError(f"saliency target action[{self.dim}]: the policy has {first.shape[-1]} action dimensions")
        return first[:, self.dim]


@dataclass
class PixelPath:
    """An agent's encoder split at the network input: uint8 frames -> `crop` (the eval-time
    augmentation) -> `frames` single frames -> ``core.preprocess`` -> x -> ``core.embed``."""

    core: Encoder
    frames: int
    crop: nn.Module | None

    @classmethod
    def of(cls, encoder: Encoder) -> "PixelPath":
        from vfmbench.training.frozen_run import FrozenRunEncoder

        if isinstance(encoder, FrozenRunEncoder):  # a VAT pi0->1: another run's encoder, frozen, as it ran there
            encoder = encoder.inner
        crop = None
        if isinstance(encoder, AugmentedEncoder):
            crop, encoder = encoder.augment, encoder.inner
        frames = 1
        if isinstance(encoder, FrameStackEncoder):
            frames, encoder = encoder.frames, encoder.inner
        if encoder.input_key != "pixels":
            raise SaliencyError(f"encoder {encoder.name!r} reads {encoder.input_key!r}, not images; saliency maps "
                                "need an image encoder")
        if type(encoder).forward is not Encoder.forward or type(encoder).preprocess is not Encoder.preprocess:
            raise SaliencyError(f"encoder {encoder.name!r} ({type(encoder).__name__}) has its own way from frames "
                                "to features, so saliency cannot tell which tensor is the picture the network "
                                "sees; saliency supports the registry's convolutional encoders (vfmbench encoders "
                                "list), frozen or trained, and runs trained on them (a VAT pi0->1 included)")
        return cls(encoder, frames, crop)

    def single_frames(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float) ``[B, H, W, 3k]`` -> ``[B*k, H', W', 3]`` as the encoder splits them."""
        if self.crop is not None:
            images = self.crop(images)
        b, h, w, c = images.shape
        k = self.frames
        return images.reshape(b, h, w, k, 3).permute(0, 3, 1, 2, 4).reshape(b * k, h, w, 3)

    def network_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, 3k]`` -> the core's input ``[B*k, 3, h, w]``."""
        return self.core.preprocess(self.single_frames(images))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[B*k, 3, h, w]`` -> ``[B, k*D]``, as the encoder's forward."""
        return self.core.embed(x).reshape(x.shape[0] // self.frames, -1)

    def to_frame(self, maps: torch.Tensor, frame_hw: tuple[int, int]) -> torch.Tensor:
        """Maps on the network input ``[B, h, w]`` -> on the frame ``[B, H, W]``: the transpose of
        the geometric part of the pipeline (crop, resize, pad), so a pixel the network never saw
        gets 0 and each frame pixel the weight it carried into the input."""
        p = dataclasses.replace(self.core.preprocessing, scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        z = torch.ones(maps.shape[0], *frame_hw, 3, device=maps.device, requires_grad=True)
        with torch.enable_grad():
            y = apply_preprocessing(self.crop(z) if self.crop is not None else z, p)
            if y.shape[-2:] != maps.shape[-2:]:
                raise ValueError(f"maps of {tuple(maps.shape[-2:])} for a network input of {tuple(y.shape[-2:])}")
            (g,) = torch.autograd.grad(y, z, grad_outputs=maps[:, None].expand_as(y) / 3.0)
        return g.sum(-1)


_MODULE_INTERNALS = frozenset(vars(nn.Module()))  # parameters, buffers, submodules, hooks, training


@contextlib.contextmanager
def _policy_state_kept(policy: nn.Module) -> Iterator[None]:
    """Call the policy with gradients and leave its acting state (e.g. BC-RNN's hidden state and step
    count) as it was: the plain attributes of every submodule are restored afterwards, and tensors
    in them are cloned for the call (tensors made under inference mode cannot enter autograd)."""

    def clone(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.clone()
        if isinstance(v, (tuple, list)):
            return type(v)(clone(u) for u in v)
        return v

    saved = [(m, {k: v for k, v in vars(m).items() if k not in _MODULE_INTERNALS}) for m in policy.modules()]
    for m, state in saved:
        for k, v in state.items():
            if isinstance(v, (torch.Tensor, tuple, list)):
                setattr(m, k, clone(v))
    try:
        yield
    finally:
        for m, state in saved:
            for k in [k for k in vars(m) if k not in _MODULE_INTERNALS and k not in state]:
                delattr(m, k)
            vars(m).update(state)


def policy_decomposition(agent: Agent, obs: dict[str, np.ndarray], target: Target) -> tuple[FullGradDecomposition, PixelPath]:
    """FullGrad of `target` of the action the agent's policy predicts from the batched observation
    `obs` (the next one `agent.act` will see), with the agent's history, goal and policy state as
    they are now; none of them changes. Returns the decomposition (input terms ``[B, 3k, h, w]``
    on the encoder's network input) and the encoder's pixel path. Raises `SaliencyError` for
    encoders without images or with token features, and for policies whose actions carry no
    gradients (Diffusion Policy samples under ``torch.no_grad``)."""
    path = PixelPath.of(agent.encoder)
    policy = agent.policy
    dev = agent.device
    images = torch.from_numpy(np.ascontiguousarray(obs[agent.input_key])).to(dev)
    proprio = torch.from_numpy(np.ascontiguousarray(obs["proprio"])).to(dev).float()
    h = policy.history
    past_f, past_p, goal = agent._features, agent._proprio, agent._goal  # the acting state, read only
    others = [proprio]
    if past_f is not None:
        assert past_p is not None
        others += [past_f[:, 1:].clone(), past_p[:, 1:].clone()]
    if policy.dims.goal_conditioned:
        if goal is None:
            with torch.no_grad():
                goal = agent.encode(torch.from_numpy(np.ascontiguousarray(obs["goal_" + agent.input_key])).to(dev))
        others.append(goal.clone())

    def forward(x: torch.Tensor, p: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        f = agent.feature_norm(path.embed(x).float())
        p = agent.proprio_norm(p)
        if past_f is None:
            feats, props = f[:, None].repeat(1, h, 1), p[:, None].repeat(1, h, 1)
        else:
            feats, props = torch.cat([rest[0], f[:, None]], 1), torch.cat([rest[1], p[:, None]], 1)
        inputs = {"features": feats, "proprio": props}
        if policy.dims.goal_conditioned:
            inputs["goal"] = rest[-1]
        with _policy_state_kept(policy):
            return target(policy.act(inputs).float())

    x = path.network_input(images)
    try:
        dec = full_gradient(forward, x, agent, others, group=path.frames)
    except SaliencyError as exc:
        raise SaliencyError(f"{agent.encoder.name} + {type(policy).__name__}: {exc}") from None
    tokens = [t.name for t in dec.bias_terms if t.name.startswith("encoder.") and t.value.ndim == 3]
    if tokens:
        raise SaliencyError(f"encoder {agent.encoder.name!r} computes token features (layer {tokens[0]} returns "
                            "[B, N, C]); FullGrad here needs convolutional feature maps (paper 001 Fig. 5 likewise "
                            "has no map for the ViT-based MVP)")
    return dec, path


# ------------------------------------------------------------------------------ the analysis


@dataclass
class SaliencyRecord:
    """``<out>/saliency.json`` (schema `SCHEMA`): FullGrad maps of a trained run's action along
    its rollouts. Arrays (frames, maps, outputs) are in `arrays` (npz, relative to the record's
    folder); `figures` lists the Fig.-5-style PNGs."""

    schema: str
    run: str
    checkpoint_step: int
    task: str
    encoder: str  # the encoder's label
    trainable: bool  # trained end to end with the policy (else frozen)
    method: str
    target: str  # "norm" or "action[i]"
    episodes: int
    seeds: list[int]
    every: int  # a map every `every` steps of each episode, from step 0
    frames: int  # maps computed
    frame_size: list[int]  # [H, W] of the task's frames (the maps' size)
    input_size: list[int]  # [h, w] of the encoder's network input
    successes: list[bool]  # per episode, at the final step
    terms: dict[str, int]  # bias-like terms per forward pass, by kind
    spatial_terms: int  # of which feature maps (they enter the map)
    completeness_gap: float  # median over frames of |f - total| / |f|
    output_mean: float  # mean of the target over the frames
    mask_mass: float | None  # mean share of saliency on the task's ground-truth parts (None: no masks)
    mask_area: float | None  # mean share of the frame those parts cover
    seconds: float
    arrays: str = ARRAYS_FILE
    figures: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SaliencyRecord":
        """The record from its JSON dict; `DatasetError` for another schema or missing fields."""
        if data.get("schema") != SCHEMA:
            raise DatasetError(f"not a saliency record (schema {data.get('schema')!r}, expected {SCHEMA})")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in data and n not in ("arrays", "figures"))
        if missing:
            raise DatasetError(f"saliency record lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """A short table, for reports (which place `figures` themselves)."""
        focus = ("-" if self.mask_mass is None else
                 f"{self.mask_mass:.2f} of the saliency on {self.mask_area:.2f} of the frame")
        rows = [
            ("run", f"{self.task} / {self.encoder} ({'trained' if self.trainable else 'frozen'}) / {self.method}, "
                    f"step {self.checkpoint_step}"),
            ("target", self.target),
            ("maps", f"{self.frames} (every {self.every} steps of {self.episodes} episodes, success "
                     f"{np.mean(self.successes):.2f})"),
            ("input", f"{self.input_size[0]}x{self.input_size[1]} network input, "
                      f"{self.frame_size[0]}x{self.frame_size[1]} frame"),
            ("bias terms", ", ".join(f"{k} {v}" for k, v in self.terms.items()) + f" ({self.spatial_terms} spatial)"),
            ("completeness gap", f"{self.completeness_gap:.3g} (median over maps of abs(f - sum of the parts) / abs(f))"),
            ("on task parts", focus),
        ]
        return "\n".join(["| | |", "|---|---|", *(f"| {md_cell(k)} | {md_cell(v)} |" for k, v in rows)])


def _kinds(dec: FullGradDecomposition) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for t in dec.bias_terms:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    return kinds


def run_saliency(run_dir: str | Path, out: str | Path, episodes: int = 2, every: int = 10, target: Target = Target(),
                 step: int | None = None, seed: int | None = None, n_envs: int = 5, figure_steps: int = 4,
                 device: str = "auto", progress: bool = True) -> SaliencyRecord:
    """Roll out the run in `run_dir` (its latest checkpoint, or `step`) for `episodes` held-out
    episodes in its own task (the recorded task config, wrappers included), `n_envs` in
    lockstep, and compute FullGrad maps of `target` every `every` steps from step 0; write
    ``<out>/saliency.json``, ``saliency.npz`` (``frames`` uint8 ``[N, H, W, 3k]``, ``saliency``
    float32 ``[N, H, W]`` on the frame, not rescaled; ``episode``, ``step``, ``output``, ``total``
    ``[N]``; ``mask`` bool ``[N, H, W]`` where the task has ground-truth masks) and
    ``saliency.png`` (frame, heat map, overlay for `figure_steps` steps of the first episode).

    Raises `VfmbenchError` when `run_dir` is not a trained run, `SaliencyError` for encoders or
    policies FullGrad cannot explain (before any rollout), `ConfigError` for bad options."""
    from vfmbench.evaluation.rollout import EVAL_SEED_BASE
    from vfmbench.tasks import TaskConfig, make_task
    from vfmbench.training import load_agent
    from vfmbench.training.frozen_run import check_step
    from vfmbench.utils.config import from_dict

    if episodes < 1 or every < 1 or n_envs < 1 or figure_steps < 1:
        raise ConfigError("saliency: episodes, every, envs and figure steps must be at least 1")
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise VfmbenchError(f"{run_dir}: no such run folder")
    check_step(run_dir, step, option="--step")
    t0 = time.time()
    agent, config = load_agent(run_dir, step=step, device=device)
    PixelPath.of(agent.encoder)  # refuse state encoders before building any environment
    spec = config["spec"]
    task_config = from_dict(TaskConfig, config["task_config"], source=f"{run_dir / 'config.json'} task_config")
    seed = EVAL_SEED_BASE if seed is None else seed
    seeds = [seed + i for i in range(episodes)]
    keys = agent.observation_keys
    rows: dict[str, list[Any]] = {k: [] for k in ("frames", "saliency", "episode", "step", "output", "total", "mask")}
    successes: list[bool] = []
    kinds: dict[str, int] = {}
    spatial = 0
    input_hw: tuple[int, int] = (0, 0)
    has_masks = True
    envs = [make_task(spec["task"], task_config) for _ in range(min(n_envs, episodes))]
    try:
        for start in range(0, episodes, len(envs)):
            batch_seeds = seeds[start : start + len(envs)]
            active = envs[: len(batch_seeds)]
            obs = [env.reset(s) for env, s in zip(active, batch_seeds)]
            agent.reset(len(active), batch_seeds)
            last = np.zeros(len(active), bool)
            for t in range(active[0].max_episode_steps):
                batch = {k: np.stack([o[k] for o in obs]) for k in keys}
                if t % every == 0:
                    dec, path = policy_decomposition(agent, batch, target)
                    if not kinds:
                        kinds, spatial = _kinds(dec), sum(term.spatial for term in dec.bias_terms)
                        input_hw = tuple(dec.input_term.shape[-2:])  # type: ignore[assignment]
                    frames = batch[agent.input_key]
                    maps = path.to_frame(dec.saliency(), frames.shape[1:3])
                    rows["frames"].append(frames)
                    rows["saliency"].append(maps.float().cpu().numpy())
                    rows["episode"].append(np.arange(start, start + len(active)))
                    rows["step"].append(np.full(len(active), t))
                    rows["output"].append(dec.output.float().cpu().numpy())
                    rows["total"].append(dec.total().float().cpu().numpy())
                    if has_masks:
                        try:
                            rows["mask"].append(np.stack([env.mask() for env in active]))
                        except NotImplementedError:
                            has_masks = False
                    if progress:
                        print(f"saliency: episodes {start}-{start + len(active) - 1}, step {t}", file=sys.stderr,
                              flush=True)
                actions = agent.act(batch)
                steps = [env.step(a) for env, a in zip(active, actions)]
                obs = [s.observation for s in steps]
                last = np.array([s.success for s in steps])
                if all(s.done for s in steps):
                    break
            successes += last.tolist()
    finally:
        for env in envs:
            env.close()
    arrays = {k: np.concatenate(v) for k, v in rows.items() if v and (k != "mask" or has_masks)}
    arrays["saliency"] = arrays["saliency"].astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / ARRAYS_FILE, **arrays)
    output, total = arrays["output"], arrays["total"]
    gap = np.abs(output - total) / np.maximum(np.abs(output), 1e-12)
    mass = area = None
    if has_masks:
        m = arrays["mask"].astype(np.float64)
        s = arrays["saliency"].astype(np.float64)
        mass = float(np.mean((s * m).sum((1, 2)) / np.maximum(s.sum((1, 2)), 1e-12)))
        area = float(m.mean())
    step_done = int(read_json(_checkpoint_state(run_dir, step))["step"])
    record = SaliencyRecord(
        schema=SCHEMA, run=str(run_dir), checkpoint_step=step_done, task=spec["task"],
        encoder=agent.encoder.label, trainable=bool(agent.encoder.trainable), method=spec.get("method", "bc"),
        target=str(target), episodes=episodes, seeds=seeds, every=every, frames=int(len(output)),
        frame_size=list(arrays["saliency"].shape[1:]), input_size=list(input_hw),
        successes=[bool(s) for s in successes], terms=kinds, spatial_terms=int(spatial),
        completeness_gap=float(np.median(gap)), output_mean=float(np.mean(output)), mask_mass=mass, mask_area=area,
        seconds=0.0,
    )
    record.figures = [plot_saliency(arrays, out / FIGURE_FILE, figure_steps,
                                    title=f"FullGrad of {record.target}: {record.task}, {record.encoder} "
                                          f"({'trained' if record.trainable else 'frozen'}), {record.method}").name]
    record.seconds = round(time.time() - t0, 2)
    write_json_atomic(out / RECORD_FILE, record.to_dict())
    return record


def _checkpoint_state(run_dir: Path, step: int | None) -> Path:
    """``state.json`` of the checkpoint `load_agent` loaded (the latest, or `step`)."""
    from vfmbench.training.checkpoint import list_checkpoints

    ckpts = [c for c in list_checkpoints(run_dir) if step is None or int(c.name.split("_")[1]) == step]
    return ckpts[-1] / "state.json"


def plot_saliency(arrays: dict[str, np.ndarray], path: Path, steps: int = 4, title: str = "") -> Path:
    """Paper 001 Fig. 5 layout: for up to `steps` maps of the first episode (evenly spaced), the
    frame (the newest of a stack), the heat map (rescaled to [0, 1] per frame) and the overlay,
    with a labelled colour bar for the 0-1 scale (the figure's last axes);
    written to `path` (PNG). Needs matplotlib (extra ``viz``)."""
    from vfmbench.utils.imports import require

    matplotlib = require("matplotlib", extra="viz")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = np.flatnonzero(arrays["episode"] == arrays["episode"][0])
    pick = first[np.unique(np.linspace(0, len(first) - 1, min(steps, len(first))).round().astype(int))]
    fig, axes = plt.subplots(len(pick), 3, figsize=(6.6, 2.2 * len(pick)), squeeze=False)
    for row, i in zip(axes, pick):
        frame = arrays["frames"][i][..., -3:]
        s = arrays["saliency"][i]
        s = (s - s.min()) / max(float(s.max() - s.min()), 1e-12)
        row[0].imshow(frame)
        row[0].set_ylabel(f"step {int(arrays['step'][i])}", fontsize=8)
        heat = row[1].imshow(s, cmap="jet", vmin=0, vmax=1)
        row[2].imshow(frame)
        row[2].imshow(s, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        for ax, name in zip(row, ("frame", "FullGrad", "overlay")):
            ax.set_xticks([])
            ax.set_yticks([])
            if i == pick[0]:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    cax = fig.add_axes((0.88, 0.12, 0.025, 0.76))  # one scale for every heat map and overlay
    bar = fig.colorbar(heat, cax=cax)
    bar.set_label("FullGrad saliency (each map rescaled to 0-1)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
