"""Fast attention paths for SAM's global-attention layers: the decomposed relative-position
bias as a FlexAttention score modifier, or folded into the query-key product (``concat``).

`transformers`' ``SamVisionAttention`` (and its SDPA variant, the one it builds by default) adds
segment-anything's decomposed relative-position bias as a materialised tensor: for a query at
grid cell (qh, qw) and a key at (kh, kw),

    bias[b, h, q, k] = rel_h[b, h, q, kh] + rel_w[b, h, q, kw],
    rel_h[b, h, q, :] = q_vec . R_h[qh, :, :],   rel_w[b, h, q, :] = q_vec . R_w[qw, :, :]

(``q_vec`` the unscaled query, ``R_h`` / ``R_w`` the rel-pos tables gathered by relative
position, segment-anything's ``get_rel_pos`` / ``add_decomposed_rel_pos``). In a global layer
(N = 64 x 64 = 4096 tokens at 1024 input) the bias is ``[B, heads, N, N]``: 16M values per
image and head, written and read once per layer, and the attention cannot use a fused kernel
that avoids it. `SamFlexAttention` keeps only the small per-query tensors ``rel_h``
``[B, heads, N, H]`` and ``rel_w`` ``[B, heads, N, W]`` and adds them inside
``torch.nn.attention.flex_attention`` with a score modifier::

    score + rel_h[b, h, q, k // W] + rel_w[b, h, q, k % W]

(the key index k = kh * W + kw runs row-major over the grid, as the tokens do), so no N x N
tensor is ever stored. On CUDA, flex_attention runs compiled (``torch.compile(flex_attention)``,
made once per process on first use; inside an already compiled model the plain function is
traced instead); on the CPU its unfused reference implementation runs (tests only: it
materialises the scores).

The ``concat`` path writes the bias as part of the query-key product instead, exactly: with
``e_r(k)`` the one-hot vector of key k's grid row (length H) and ``e_c(k)`` of its column (W),

    scale q . k + rel_h[q, kh] + rel_w[q, kw] = [scale q, rel_h[q], rel_w[q]] . [k, e_r(k), e_c(k)],

so `torch.nn.functional.scaled_dot_product_attention` runs on queries and keys of C + H + W
channels (64 + 64 + 64 for SAM at 1024 input; zero-padded to a multiple of 8, which SDPA's fused
kernels need: 64 + 14 + 14 = 92 -> 96 in a 14 x 14 window) with scale 1 and the values unchanged
(C): no N x N tensor and no gathers, at the cost of a query-key product up to three times as wide.
Measured on an H200 (docs/encoders.md): the fastest path, and a third of eager's peak memory.

In ``concat`` mode the windowed layers (N = 14 x 14 = 196 tokens per window, the grid padded to
a multiple of 14) take the same path, so their ``[B * windows, heads, 196, 196]`` bias is not
materialised either. The ``flex`` and ``auto`` modes leave the windowed layers to
`transformers`' module (a flex kernel there would add a compilation per window shape).

Modes (`set_sam_attention`, the ``attention`` option of the SAM encoders and of the promptable
SAM of the segmenters):

- ``"concat"`` (the default of the encoders and segmenters): `SamFlexAttention` computing the
  bias by concatenation (above) in every layer, global and windowed, on any device.
- ``"eager"``: `transformers`' own modules, untouched: the reference.
- ``"flex"``: `SamFlexAttention` in every global layer, on any device (slower than eager on an H200).
- ``"auto"``: `SamFlexAttention` in every global
  layer, which runs flex_attention when its input is on CUDA (and the head dimension is at least
  16, the smallest the fused kernel takes) and otherwise SDPA with the materialised bias, the
  same computation as `transformers`' module. A model built on the CPU and moved to the GPU
  afterwards takes the fast path from then on.

The replacement module holds the very same ``qkv``, ``proj``, ``rel_pos_h`` and ``rel_pos_w`` as
the module it replaces (the same Parameter objects, at the same names), so state-dict keys are
identical in every mode and checkpoints load unchanged. Unlike `transformers`' eager module it
returns no attention weights (as its SDPA module, its default, already does not).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from vfmbench.utils.errors import ConfigError

ATTENTION_MODES = ("auto", "eager", "flex", "concat")
DEFAULT_ATTENTION = "concat"  # the fastest path measured on an H200 (docs/encoders.md)
MIN_FLEX_HEAD_DIM = 16  # the fused flex_attention kernel's smallest head dimension

_compiled_flex: Callable[..., torch.Tensor] | None = None


def _flex_attention(on_cuda: bool) -> Callable[..., torch.Tensor]:
    """flex_attention itself (CPU, or while an enclosing torch.compile traces), else the one
    compiled copy, made on first use."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if not on_cuda or torch.compiler.is_compiling():
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention)
    return _compiled_flex


def check_attention_mode(mode: str) -> str:
    if mode not in ATTENTION_MODES:
        raise ConfigError(f"SAM attention must be one of {', '.join(ATTENTION_MODES)}; got {mode!r}")
    return mode


def rel_pos_table(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """segment-anything's ``get_rel_pos`` for equal query and key sizes: ``[size, size, C]`` with
    entry (i, j) the embedding of relative position i - j. A table of another length than
    ``2 * size - 1`` is first resized by linear interpolation (as segment-anything and
    `transformers` do)."""
    length = 2 * size - 1
    if rel_pos.shape[0] != length:
        rel_pos = F.interpolate(rel_pos.T[None], size=length, mode="linear")[0].T
    coords = torch.arange(size, device=rel_pos.device)
    return rel_pos[coords[:, None] - coords[None, :] + (size - 1)]


def decomposed_rel_pos(query: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, height: int,
                       width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``query`` ``[..., H * W, C]`` (unscaled) -> ``rel_h`` ``[..., H * W, H]`` and ``rel_w``
    ``[..., H * W, W]``: the query's dot products with the rel-pos embeddings of every key row and
    column."""
    lead, c = query.shape[:-2], query.shape[-1]
    q = query.reshape(-1, height, width, c)
    rel_h = torch.einsum("bhwc,hkc->bhwk", q, rel_pos_table(height, rel_pos_h))
    rel_w = torch.einsum("bhwc,wkc->bhwk", q, rel_pos_table(width, rel_pos_w))
    return rel_h.reshape(*lead, height * width, height), rel_w.reshape(*lead, height * width, width)


def rel_pos_score_mod(rel_h: torch.Tensor, rel_w: torch.Tensor, width: int) -> Callable[..., torch.Tensor]:
    """The flex_attention score modifier adding the decomposed bias: ``rel_h`` ``[B, heads, N, H]``,
    ``rel_w`` ``[B, heads, N, W]``; key index k is at grid row k // W, column k % W."""

    def score_mod(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor,
                  kv_idx: torch.Tensor) -> torch.Tensor:
        return score + rel_h[b, h, q_idx, kv_idx // width] + rel_w[b, h, q_idx, kv_idx % width]

    return score_mod


def concat_rel_pos_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, rel_h: torch.Tensor,
                             rel_w: torch.Tensor, scale: float, dropout: float = 0.0) -> torch.Tensor:
    """Attention with the decomposed bias folded into the query-key product (the module's
    docstring): `query`, `key`, `value` ``[B, heads, N, C]`` with N = H * W row-major, `rel_h`
    ``[B, heads, N, H]``, `rel_w` ``[B, heads, N, W]`` -> ``[B, heads, N, C]``."""
    height, width, n = rel_h.shape[-1], rel_w.shape[-1], key.shape[-2]
    index = torch.arange(n, device=key.device)
    rows = F.one_hot(index // width, height).to(key.dtype)  # e_r(k): [N, H]
    cols = F.one_hot(index % width, width).to(key.dtype)  # e_c(k): [N, W]
    lead = key.shape[:-2]
    q = torch.cat([query * scale, rel_h.to(query.dtype), rel_w.to(query.dtype)], dim=-1)
    k = torch.cat([key, rows.expand(*lead, n, height), cols.expand(*lead, n, width)], dim=-1)
    pad = -q.shape[-1] % 8  # zeros add nothing to the product; fused kernels want multiples of 8
    if pad:
        q, k = F.pad(q, (0, pad)), F.pad(k, (0, pad))
    return F.scaled_dot_product_attention(q, k, value, dropout_p=dropout, scale=1.0)


class SamFlexAttention(nn.Module):
    """An attention layer of SAM's image encoder (a global one; in ``concat`` mode also a
    windowed one, given its windows) that never materialises the bias (the module's docstring). Built from the `transformers` module it replaces, sharing its
    parameters: ``qkv`` (``[3 * D, D]``, rows ordered q, k, v and within each head-major),
    ``proj``, ``rel_pos_h``, ``rel_pos_w``. Input ``[B, H, W, D]``; returns ``(output, None)``
    as `transformers`' modules do."""

    def __init__(self, original: nn.Module, mode: str = "flex"):
        super().__init__()
        if not getattr(original, "use_rel_pos", False):
            raise ValueError("SamFlexAttention needs an attention module with relative positions (use_rel_pos)")
        self.mode = check_attention_mode(mode)
        self.num_attention_heads: int = original.num_attention_heads
        self.scale: float = original.scale
        self.dropout: float = original.dropout
        self.use_rel_pos = True
        self.qkv = original.qkv
        self.proj = original.proj
        self.rel_pos_h = original.rel_pos_h
        self.rel_pos_w = original.rel_pos_w
        self.eager_class = type(original)  # to put the `transformers` module back (`set_sam_attention`)

    def uses_flex(self, query: torch.Tensor) -> bool:
        """Whether this call runs flex_attention (mode "flex"; or "auto" on CUDA with a head dimension
        the fused kernel takes)."""
        if self.mode == "flex":
            return True
        return self.mode == "auto" and query.is_cuda and query.shape[-1] >= MIN_FLEX_HEAD_DIM

    def forward(self, hidden_states: torch.Tensor, output_attentions: Any = None) -> tuple[torch.Tensor, None]:
        b, height, width, _ = hidden_states.shape
        heads, n = self.num_attention_heads, height * width
        # [B, N, 3, heads, C] -> 3 x [B, heads, N, C]
        query, key, value = self.qkv(hidden_states).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        rel_h, rel_w = decomposed_rel_pos(query, self.rel_pos_h, self.rel_pos_w, height, width)
        dropout = self.dropout if self.training else 0.0
        if self.mode == "concat":
            out = concat_rel_pos_attention(query, key, value, rel_h, rel_w, self.scale, dropout)
        elif self.uses_flex(query):
            if dropout:
                raise NotImplementedError("flex_attention has no attention dropout; train with attention='eager'")
            flex = _flex_attention(query.is_cuda)
            out = flex(query, key, value, score_mod=rel_pos_score_mod(rel_h, rel_w, width), scale=self.scale)
        else:  # transformers' SDPA module: the bias materialised, [B, heads, N, N]
            bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, n, n)
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout,
                                                 scale=self.scale)
        out = out.transpose(1, 2).reshape(b, height, width, -1)
        return self.proj(out), None

    def extra_repr(self) -> str:
        return f"heads={self.num_attention_heads}, mode={self.mode!r}"


def to_eager(module: SamFlexAttention) -> nn.Module:
    """The `transformers` attention module again, holding the same parameters."""
    cls = module.eager_class
    eager = cls.__new__(cls)
    nn.Module.__init__(eager)
    eager.num_attention_heads, eager.scale, eager.dropout = module.num_attention_heads, module.scale, module.dropout
    eager.use_rel_pos = True
    eager.qkv, eager.proj = module.qkv, module.proj
    eager.rel_pos_h, eager.rel_pos_w = module.rel_pos_h, module.rel_pos_w
    return eager.train(module.training)


def set_sam_attention(vision_encoder: nn.Module, mode: str) -> nn.Module:
    """Put attention mode `mode` ("eager", "flex", "concat", "auto"; the module's docstring) into the global
    layers of `transformers`' ``SamVisionEncoder`` `vision_encoder` (``concat``: into every layer), in
    place (any earlier mode is replaced; parameters and state-dict keys are untouched). Returns
    `vision_encoder`."""
    check_attention_mode(mode)
    for layer in vision_encoder.layers:
        attn = layer.attn
        if layer.window_size > 0 and mode != "concat":  # flex/auto: windowed layers keep transformers' module
            layer.attn = to_eager(attn) if isinstance(attn, SamFlexAttention) else attn
            continue
        if isinstance(attn, SamFlexAttention):
            attn = to_eager(attn)
        layer.attn = attn if mode == "eager" else SamFlexAttention(attn, mode).train(attn.training)
    return vision_encoder


def sam_attention_mode(vision_encoder: nn.Module) -> str:
    """The mode `set_sam_attention` left in `vision_encoder` ("eager" where it never ran)."""
    modes = {layer.attn.mode for layer in vision_encoder.layers
             if isinstance(layer.attn, SamFlexAttention) and layer.window_size == 0}
    return modes.pop() if len(modes) == 1 else "eager"
