"""SAM ViT image encoder: where its time goes, and which attention kernel serves it best.

Three parts, one JSON report (``--out``):

1. ``kernels``: the attention alone at SAM ViT-B's two shapes (global: 4096 tokens; windowed:
   25 windows of 196 tokens per image), 12 heads of 64, bf16, for each way of adding the decomposed
   relative-position bias: ``bias`` (the ``[B, heads, N, N]`` tensor materialised and given to SDPA
   as ``attn_mask``, `transformers`' way), ``concat`` (folded into the query-key product,
   `vfmbench.encoders.sam_attention`) under SDPA's own choice of kernel and under each kernel
   forced (``flash`` needs equal query and value widths, so there the values are zero-padded to
   the query-key width and the output sliced back), ``flex`` (CUDA only: compiled FlexAttention
   with the bias in its score modifier) and ``no_bias`` (plain attention: a lower bound, not
   SAM's computation). Rates are on the nominal FLOPs ``4 B heads N^2 64``.
2. ``encoders``: images/s of the whole encoder (uint8 frames to embeddings, bf16 autocast) with
   `attention` ``eager``, ``concat`` in the global layers only (windowed layers back on
   `transformers`' module) and ``concat`` everywhere (the default), optionally compiled, as a
   fraction of a dense bf16 matmul's rate measured in the same run.
3. ``profile``: the CUDA kernels of the default encoder's compiled pass (``torch.profiler``),
   their time grouped into matmuls, attention, and the rest.

    python benchmarks/sam_attention.py --compile --out sam_attention.json     # GPU
    python benchmarks/sam_attention.py --tiny --batch 1                         # CPU smoke run

Random weights throughout (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from vfmbench.encoders import create_encoder
from vfmbench.encoders.sam_attention import SamFlexAttention, concat_rel_pos_attention, to_eager

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoders import flops_per_image, matmul_tflops, sig  # noqa: E402

BACKENDS = {"efficient": SDPBackend.EFFICIENT_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}


def timed(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call of `fn`."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) / iters


def attention_variants(q, k, v, rel_h, rel_w, scale) -> dict[str, Callable[[], torch.Tensor]]:
    """The ways of computing one layer's attention (the module's docstring)."""
    b, heads, n, c = q.shape
    height, width = rel_h.shape[-1], rel_w.shape[-1]

    def bias():
        mask = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, n, n)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

    def concat():
        return concat_rel_pos_attention(q, k, v, rel_h, rel_w, scale)

    def padded_v_concat():  # flash: values padded to the query-key width (zeros), output sliced
        width_qk = c + height + width
        width_qk += -width_qk % 8
        return concat_rel_pos_attention(q, k, F.pad(v, (0, width_qk - c)), rel_h, rel_w, scale)[..., :c]

    variants: dict[str, Callable[[], torch.Tensor]] = {"bias": bias, "concat": concat}
    for name, backend in BACKENDS.items():
        if name == "math":
            continue
        body = padded_v_concat if name == "flash" else concat

        def forced(body=body, backend=backend):
            with sdpa_kernel(backend):
                return body()

        variants[f"concat_{name}"] = forced
    if q.is_cuda:  # the fused flex kernel (compiled), the bias added by its score modifier
        from vfmbench.encoders.sam_attention import _flex_attention, rel_pos_score_mod

        flex = _flex_attention(True)
        variants["flex"] = lambda: flex(q, k, v, score_mod=rel_pos_score_mod(rel_h, rel_w, width), scale=scale)
    variants["no_bias"] = lambda: F.scaled_dot_product_attention(q, k, v, scale=scale)
    return variants


def bench_kernels(device: torch.device, batch: int, tiny: bool, warmup: int, iters: int) -> list[dict[str, Any]]:
    heads, c = (4, 16) if tiny else (12, 64)
    shapes = {"global": (batch, 16 if tiny else 64), "windowed": (batch * 25, 4 if tiny else 14)}
    g = torch.Generator(device=device).manual_seed(0)
    rows = []
    for layer, (b, side) in shapes.items():
        n = side * side

        def rand(*shape, std=1.0):
            return (torch.randn(*shape, generator=g, device=device) * std).to(torch.bfloat16)

        q, k, v = rand(b, heads, n, c), rand(b, heads, n, c), rand(b, heads, n, c)
        rel_h, rel_w = rand(b, heads, n, side, std=2.0), rand(b, heads, n, side, std=2.0)
        ref = attention_variants(q, k, v, rel_h, rel_w, c ** -0.5)["bias"]().float()
        nominal = 4 * b * heads * n * n * c
        for name, fn in attention_variants(q, k, v, rel_h, rel_w, c ** -0.5).items():
            row: dict[str, Any] = {"layer": layer, "variant": name, "batch": b, "tokens": n}
            try:
                with torch.no_grad():
                    out = fn().float()
                    s = timed(fn, device, warmup, iters)
            except RuntimeError as e:  # a forced kernel that does not take these inputs
                row["error"] = str(e).splitlines()[0][:200]
            else:
                row.update(ms=sig(1000 * s), nominal_tflops=sig(nominal / s / 1e12),
                           max_abs_diff_to_bias=sig(float((out - ref).abs().max())))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def encoder_with(mode: str, tiny: bool, device: torch.device) -> torch.nn.Module:
    """sam_vit_b (random) with attention `mode`; "concat_global": concat in the global layers only."""
    enc = create_encoder("sam_vit_b", pretrained=False, tiny=tiny,
                         attention="concat" if mode == "concat_global" else mode)
    if mode == "concat_global":
        for layer in enc.model.layers:
            if layer.window_size > 0 and isinstance(layer.attn, SamFlexAttention):
                layer.attn = to_eager(layer.attn)
    return enc.to(device).eval()


def bench_encoders(device: torch.device, batch: int, tiny: bool, compile_: bool, warmup: int, iters: int,
                   peak: float, modes: list[str], compile_mode: str | None = None) -> tuple[list[dict[str, Any]], Any]:
    size = 128 if tiny else 1024
    frames = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    flops = flops_per_image(encoder_with("eager", tiny, device), frames, torch.bfloat16)
    rows, compiled_default = [], None
    for mode in modes:
        enc = encoder_with(mode, tiny, device)
        for comp in ([False, True] if compile_ else [False]):
            run = enc.compile_model(**({"mode": compile_mode} if compile_mode else {})) if comp else enc
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            with torch.no_grad(), autocast:
                s = timed(lambda: run(frames), device, warmup, iters)
            ips = batch / s
            row = {"attention": mode, "compile": (compile_mode or True) if comp else False, "batch": batch,
                   "images_per_s": sig(ips),
                   "gflop_per_image": sig(flops / 1e9),
                   "fraction_of_bf16_matmul_peak": sig(flops * ips / 1e12 / peak),
                   "peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                   if device.type == "cuda" else None}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if mode == "concat" and comp == compile_:
                compiled_default = (run, frames)
    return rows, compiled_default


def kernel_group(name: str) -> str:
    low = name.lower()
    if any(s in low for s in ("gemm", "sm90_xmma", "cutlass", "nvjet", "matmul", "mm_")) and "attention" not in low \
            and "fmha" not in low and "flash" not in low:
        return "matmul"
    if any(s in low for s in ("fmha", "flash", "attention", "sdpa", "cudnn")):
        return "attention"
    if "conv" in low:
        return "convolution"
    return "other (elementwise, norms, copies)"


def profile_encoder(run: Any, frames: torch.Tensor, device: torch.device, top: int = 15) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        run(frames)
        with profile(activities=activities) as prof:
            for _ in range(3):
                run(frames)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    events = prof.key_averages()
    attr = "device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    kernels = [(e.key, getattr(e, attr, 0.0), e.count) for e in events if getattr(e, attr, 0.0) > 0]
    if device.type == "cuda":
        kernels = [k for k in kernels if not k[0].startswith(("aten::", "Torch-Compiled", "CompiledFunction",
                                                              "cudaLaunch", "Memcpy", "Memset"))]
    total = sum(t for _, t, _ in kernels) or 1.0
    groups: dict[str, float] = {}
    for name, t, _ in kernels:
        groups[kernel_group(name)] = groups.get(kernel_group(name), 0.0) + t
    kernels.sort(key=lambda k: -k[1])
    return {"ms_per_batch": sig(total / 3 / 1000), "groups": {k: sig(v / total, 3) for k, v in groups.items()},
            "top": [{"kernel": n[:120], "share": sig(t / total, 3), "calls_per_batch": c // 3}
                    for n, t, c in kernels[:top]]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16, help="images per batch")
    p.add_argument("--compile", action="store_true", help="also time the compiled encoders (and profile compiled)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (e.g. max-autotune); default: its default")
    p.add_argument("--modes", default="eager,concat_global,concat", help="encoder attention modes to time")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: kernels, encoders, profile")
    p.add_argument("--tiny", action="store_true", help="toy sizes (CPU smoke run)")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    iters = args.iters or (2 if args.tiny else 20)
    warmup = 1 if args.tiny else 5
    skip = {s for s in args.skip.split(",") if s}
    peak = matmul_tflops(device, torch.bfloat16, 512 if args.tiny else 8192, iters=3 if args.tiny else 20)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                              "torch": torch.__version__, "bf16_matmul_tflops": sig(peak), "tiny": args.tiny}
    if "kernels" not in skip:
        report["kernels"] = bench_kernels(device, args.batch, args.tiny, warmup, iters)
    if "encoders" not in skip:
        rows, default = bench_encoders(device, args.batch, args.tiny, args.compile, warmup, iters, peak,
                                       [m for m in args.modes.split(",") if m], args.compile_mode)
        report["encoders"] = rows
        if "profile" not in skip and default is not None:
            report["profile"] = profile_encoder(*default, device)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
