"""The SAM image encoder's FlexAttention path (`vfmbench.encoders.sam_attention`) against
`transformers`' own attention, on the CPU in float32.

The weights are scaled up from the std-0.02 init (query/key/value weights std 0.25, rel-pos tables
std 0.5) so that attention logits and the relative-position bias both have a standard deviation
of a few units: attention is far from uniform and the bias moves it, so a wrong bias (rows and
columns swapped, rel_h and rel_w swapped) changes the output by orders of magnitude more than
the tolerance, which the tests check too.
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("transformers")

from vfmbench.encoders import create_encoder  # noqa: E402
from vfmbench.encoders import sam_attention  # noqa: E402
from vfmbench.encoders.sam import SAM_ARCHS, SamArch, SamEncoder  # noqa: E402
from vfmbench.encoders.sam_attention import DEFAULT_ATTENTION, SamFlexAttention, sam_attention_mode, set_sam_attention  # noqa: E402
from vfmbench.masking.segmenters import SegmenterConfig  # noqa: E402
from vfmbench.utils.errors import ConfigError  # noqa: E402

# 128 x 128 input: an 8 x 8 grid; layers 0 and 2 windowed (windows of 3, so the grid is padded to 9),
# layer 1 global; 4 heads of dimension 16.
ARCH = SamArch(hidden_size=64, num_layers=3, num_heads=4, global_attn_indexes=(1,), image_size=128, window_size=3,
               out_channels=16)
TOL = 1e-5
WRONG = 1e-2


@pytest.fixture(autouse=True)
def _quiet_flex():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        yield


def peaked_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Scale the attention weights up: qkv std 0.25, rel-pos tables std 0.5, absolute positions std 0.5."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_pos" in name or name == "pos_embed":
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif ".qkv." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.25)
    return model


def encoder(attention: str, seed: int = 0) -> SamEncoder:
    enc = SamEncoder("sam_test", ARCH, seed=seed, attention=attention)
    peaked_(enc.model, seed)
    return enc


def global_attention(enc: SamEncoder) -> torch.nn.Module:
    return enc.model.layers[ARCH.global_attn_indexes[0]].attn


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_flex_matches_transformers_attention_module():
    """One global layer, non-square input (5 x 7) with rel-pos tables of another length (trained at
    8 x 8: both axes interpolated): flex and the SDPA fallback equal transformers' module."""
    eager = global_attention(encoder("eager"))
    x = torch.randn(2, 5, 7, ARCH.hidden_size, generator=torch.Generator().manual_seed(1))
    ref = eager(x)[0]
    assert ref.abs().mean() > 0.1
    for mode in ("flex", "auto", "concat"):  # auto on the CPU: SDPA with the materialised bias
        assert max_diff(SamFlexAttention(eager, mode)(x)[0], ref) < TOL * ref.abs().max(), mode
    # without the bias the output is far off: the bias matters at these weights
    with torch.no_grad():
        saved = eager.rel_pos_h.clone(), eager.rel_pos_w.clone()
        eager.rel_pos_h.zero_(), eager.rel_pos_w.zero_()
        no_bias = eager(x)[0]
        eager.rel_pos_h.copy_(saved[0]), eager.rel_pos_w.copy_(saved[1])
    assert max_diff(no_bias, ref) > 100 * WRONG


def _rows_columns_swapped(rel_h, rel_w, width):
    return lambda score, b, h, q, k: score + rel_h[b, h, q, k % width] + rel_w[b, h, q, k // width]


def _h_w_swapped(rel_h, rel_w, width):
    return lambda score, b, h, q, k: score + rel_w[b, h, q, k // width] + rel_h[b, h, q, k % width]


def test_flex_encoder_matches_eager_and_wrong_bias_does_not(monkeypatch):
    """The whole encoder (windowed and global layers, neck) in float32: flex == transformers to
    1e-5; a score modifier with key rows and columns swapped, or rel_h and rel_w swapped, is off by
    more than 1e-2."""
    x = torch.randn(2, 3, ARCH.image_size, ARCH.image_size, generator=torch.Generator().manual_seed(2))
    eager, flex = encoder("eager"), encoder("flex")
    assert isinstance(global_attention(flex), SamFlexAttention)
    assert not isinstance(flex.model.layers[0].attn, SamFlexAttention)  # windowed layers keep transformers'
    ref = eager.forward_features(x)
    assert ref.shape == (2, ARCH.out_channels, 8, 8)
    assert max_diff(flex.forward_features(x), ref) < TOL
    for wrong in (_rows_columns_swapped, _h_w_swapped):
        monkeypatch.setattr(sam_attention, "rel_pos_score_mod", wrong)
        assert max_diff(flex.forward_features(x), ref) > WRONG, wrong.__name__


def test_concat_encoder_matches_eager_and_wrong_one_hots_do_not(monkeypatch):
    """The concat path through the whole encoder equals transformers' to 1e-5; key rows and
    columns swapped in the one-hot keys (a wrong grid order) are off by more than 1e-2."""
    x = torch.randn(2, 3, ARCH.image_size, ARCH.image_size, generator=torch.Generator().manual_seed(2))
    ref = encoder("eager").forward_features(x)
    concat = encoder("concat")
    assert all(isinstance(layer.attn, SamFlexAttention) for layer in concat.model.layers)  # windowed ones too
    assert max_diff(concat.forward_features(x), ref) < TOL
    real = torch.nn.functional.one_hot

    def transposed_grid(index, classes):  # row-major keys read as column-major
        n = len(index)
        side = int(n ** 0.5)
        return real(index.reshape(side, side).T.reshape(-1), classes)

    monkeypatch.setattr(sam_attention.F, "one_hot", transposed_grid)
    assert max_diff(concat.forward_features(x), ref) > WRONG


def test_concat_in_a_window_matches_transformers_module():
    """A windowed layer's module on its windows ([windows, 3, 3, D]: query-key width 16 + 3 + 3 = 22,
    zero-padded to 24): concat equals transformers' module; without the bias it is far off."""
    eager = encoder("eager").model.layers[0].attn
    x = torch.randn(9, 3, 3, ARCH.hidden_size, generator=torch.Generator().manual_seed(4))
    ref = eager(x)[0]
    assert max_diff(SamFlexAttention(eager, "concat")(x)[0], ref) < TOL * ref.abs().max()
    with torch.no_grad():
        eager.rel_pos_h.zero_(), eager.rel_pos_w.zero_()
    assert max_diff(eager(x)[0], ref) > 10 * WRONG


def test_state_dict_keys_identical_and_checkpoints_cross_load():
    eager, flex, auto = encoder("eager", seed=3), SamEncoder("sam_test", ARCH, seed=4, attention="flex"), \
        SamEncoder("sam_test", ARCH, seed=5, attention="auto")
    keys = list(eager.model.state_dict())
    assert list(flex.model.state_dict()) == keys == list(auto.model.state_dict())
    assert any(k.startswith("layers.1.attn.rel_pos_h") for k in keys)
    # a checkpoint of one mode loads strictly into the others (and back) and gives the same embeddings
    flex.model.load_state_dict(eager.model.state_dict(), strict=True)
    auto.model.load_state_dict(flex.model.state_dict(), strict=True)
    x = torch.randn(1, 3, ARCH.image_size, ARCH.image_size, generator=torch.Generator().manual_seed(6))
    ref = eager.forward_features(x)
    assert max_diff(flex.forward_features(x), ref) < TOL
    assert max_diff(auto.forward_features(x), ref) < TOL
    eager2 = SamEncoder("sam_test", ARCH, seed=7, attention="eager")
    eager2.model.load_state_dict(flex.model.state_dict(), strict=True)
    assert max_diff(eager2.forward_features(x), ref) < TOL


def test_switching_modes_keeps_the_parameters():
    enc = encoder("eager")
    before = dict(enc.model.named_parameters())
    attn_type = type(global_attention(enc))
    for mode in ("flex", "concat", "auto", "eager", "concat", "flex"):
        set_sam_attention(enc.model, mode)
        assert sam_attention_mode(enc.model) == mode
        windowed = enc.model.layers[0].attn
        assert isinstance(windowed, SamFlexAttention) == (mode == "concat"), mode
        after = dict(enc.model.named_parameters())
        assert list(after) == list(before) and all(after[k] is before[k] for k in before)
    set_sam_attention(enc.model, "eager")
    assert type(global_attention(enc)) is attn_type is type(enc.model.layers[0].attn)


def test_attention_option_through_the_registry_and_the_segmenter_model():
    enc = create_encoder("sam_vit_b", pretrained=False, tiny=True, attention="flex")
    assert sam_attention_mode(enc.model) == "flex"
    assert sam_attention_mode(create_encoder("sam_vit_b", pretrained=False, tiny=True).model) == "concat"
    assert SegmenterConfig().attention == DEFAULT_ATTENTION == "concat"  # the segmenters' default, kept torch-free
    from vfmbench.encoders import encoder_label

    default = create_encoder("sam_vit_b", pretrained=False, tiny=True)
    # an option given at its default value names nothing, so such runs share the default's row
    assert encoder_label(default, {"tiny": True, "attention": "concat"}) == "sam_vit_b (random, tiny=True)"
    assert encoder_label(enc, {"tiny": True, "attention": "flex"}) == "sam_vit_b (random, attention=flex, tiny=True)"
    assert "attention" not in enc.cache_identity()["options"]
    with pytest.raises(ConfigError, match="attention"):
        create_encoder("sam_vit_b", pretrained=False, tiny=True, attention="sdpa")

    from vfmbench.masking.sam_model import build_promptable_sam

    frames = torch.randint(0, 256, (2, 40, 56, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(8))
    models = {m: build_promptable_sam("vit_b", None, tiny=True, attention=m) for m in ("eager", "flex")}
    for m in models.values():
        peaked_(m.model.vision_encoder)
    assert sam_attention_mode(models["flex"].model.vision_encoder) == "flex"
    assert list(models["flex"].state_dict()) == list(models["eager"].state_dict())
    ref = models["eager"].embed(frames)
    assert max_diff(models["flex"].embed(frames), ref) < TOL * max(1.0, float(ref.abs().max()))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mode", ["flex", "auto", "concat"])
def test_fast_paths_on_cuda_match_eager_at_full_size(dtype, mode):
    """SAM ViT-B's real sizes (64 x 64 grid, 12 heads of 64) on CUDA: the compiled flex kernel
    (and auto, which picks it there) and the concat path against transformers' attention. Weights scaled for this
    width (qkv std 0.07: attention logits of std about 4; rel-pos tables std 0.1: a bias of std
    about 2), peaked but not so far that float32's TF32 matmuls or bf16 flip the softmax; the
    peaked_ values of the small tests give logits in the hundreds at width 768, where any two
    correct kernels disagree. The reference is transformers' attention in float32 (TF32 off); in
    bf16 a path may deviate from it at most twice as much as transformers' own attention in bf16
    does (which rounds the scores and the bias to bf16 before adding them; concat adds in float32)."""
    eager = SamEncoder("sam_vit_b", SAM_ARCHS["vit_b"], seed=0, attention="eager")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in eager.model.named_parameters():
            if "rel_pos" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif ".qkv." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.07)
    eager = eager.cuda().eval()
    x = torch.randn(2, 3, 1024, 1024, device="cuda")

    def run(autocast_dtype):
        with torch.no_grad(), torch.autocast("cuda", dtype=autocast_dtype or torch.bfloat16,
                                             enabled=autocast_dtype is not None):
            return eager.forward_features(x).float()

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        ref = run(None)
        low = dtype if dtype != torch.float32 else None
        eager_err = max_diff(run(low), ref) / float(ref.abs().max())
        set_sam_attention(eager.model, mode)
        assert sam_attention_mode(eager.model) == mode
        rel = max_diff(run(low), ref) / float(ref.abs().max())
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    assert rel < (1e-2 if dtype == torch.float32 else max(2 * eager_err, 1e-2)), (mode, rel, eager_err)
