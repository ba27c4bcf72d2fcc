"""Encoder throughput: images/s per encoder, batch size and precision, against the FLOP bound.

For each encoder, precision (fp32, bf16 autocast) and optionally torch.compile, it times
uint8 frames -> embeddings (preprocessing included, on the device; ``--compile`` compiles the
encoder's model passes as ``vfmbench embed --compile`` does), counts the FLOPs of one
image's forward pass with ``torch.utils.flop_counter`` (2 x multiply-accumulates of matmuls,
convolutions and attention), and reports the achieved FLOP rate as a fraction of a dense bf16
matmul's rate measured in the same run. Prints JSON and writes it to ``--out``.

    python benchmarks/encoders.py --out encoders.json                 # GPU: the four paper encoders
    python benchmarks/encoders.py --tiny --out encoders_cpu.json       # CPU smoke run (toy sizes)
    python benchmarks/encoders.py --encoders sam_vit_b --precision bf16 --compile --option attention=flex

``--option KEY=VALUE`` passes encoder options (e.g. SAM's ``attention``: eager / auto / flex);
FLOPs are always counted on the default build (FlexAttention's kernels are not seen by the
FLOP counter), so fractions of the bound compare across options.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vfmbench.encoders import create_encoder, encoder_label

DEFAULT_ENCODERS = ["sam_vit_b", "dinov2_vitb14_reg", "clip_vitb16", "r3m_resnet50"]
# SAM runs at 1024 x 1024; the others at 224 x 224.
DEFAULT_BATCH = {"sam_vit_b": 16, "sam_vit_l": 8, "sam_vit_h": 4}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def sig(x: float, digits: int = 4) -> float:
    """`x` rounded to `digits` significant figures."""
    return float(f"{x:.{digits}g}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, iters: int) -> float:
    """Measured dense matmul rate (TFLOP/s) for n x n @ n x n in `dtype`."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t) / 1e12


def flops_per_image(enc: torch.nn.Module, frame: torch.Tensor, dtype: torch.dtype | None) -> float:
    """FLOPs (2 x MACs) of one image's pass, preprocessing excluded."""
    x = enc.preprocess(frame[:1])
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, _autocast(frame.device, dtype):
        enc.embed(x)
    return float(counter.get_total_flops())


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def bench_one(name: str, *, pretrained: bool, batch: int, precision: str, compile_: bool, device: torch.device,
              frame_size: int, warmup: int, iters: int, tiny: bool, peak_tflops: float,
              options: dict[str, str] | None = None) -> dict[str, Any]:
    size = {"tiny": True} if tiny else {}
    enc = create_encoder(name, pretrained=pretrained, **size, **(options or {})).to(device).eval()
    frames = torch.randint(0, 256, (batch, frame_size, frame_size, 3), dtype=torch.uint8, device=device)
    dtype = PRECISIONS[precision]
    counted = create_encoder(name, pretrained=pretrained, **size).to(device).eval() if options else enc
    flops = flops_per_image(counted, frames, dtype)
    run = enc.compile_model() if compile_ else enc
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), _autocast(device, dtype):
        for _ in range(warmup):
            run(frames)
        _sync(device)
        t = time.perf_counter()
        for _ in range(iters):
            out = run(frames)
        _sync(device)
        elapsed = time.perf_counter() - t
    ips = batch * iters / elapsed
    achieved = flops * ips / 1e12
    return {
        "encoder": name,
        "label": encoder_label(enc),
        "embed_dim": int(out.shape[1]),
        "batch_size": batch,
        "precision": precision,
        "compile": compile_,
        "options": options or {},
        "images_per_s": sig(ips),
        "ms_per_batch": sig(1000 * elapsed / iters),
        "gflops_per_image": sig(flops / 1e9),
        "achieved_tflops": sig(achieved),
        "fraction_of_bf16_matmul_peak": sig(achieved / peak_tflops),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoders", default=",".join(DEFAULT_ENCODERS), help="comma-separated registry names")
    p.add_argument("--pretrained", choices=["true", "false"], default="false",
                   help="false: random weights, nothing downloaded (results are labelled '(random)')")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default: 16 for SAM-B, else 64)")
    p.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16 (autocast)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd encoders")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--frame-size", type=int, default=224, help="square uint8 input frames (before preprocessing)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--tiny", action="store_true", help="toy model sizes and few iterations (CPU smoke test)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an encoder option (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    options = dict(kv.split("=", 1) for kv in args.option)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precisions = [s.strip() for s in args.precision.split(",") if s.strip()]
    unknown = [s for s in precisions if s not in PRECISIONS]
    if unknown:
        p.error(f"unknown precision {unknown}; valid: {', '.join(PRECISIONS)}")
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)
    iters = args.iters if args.iters is not None else (2 if args.tiny else 20)
    n = 512 if args.tiny or device.type == "cpu" else 8192
    peak = matmul_tflops(device, torch.bfloat16, n, iters=3 if args.tiny else 20)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "bf16_matmul_tflops": sig(peak),
        "bf16_matmul_size": n,
        "frame_size": args.frame_size,
        "tiny": args.tiny,
        "results": [],
    }
    try:
        import transformers

        report["transformers"] = transformers.__version__
    except ImportError:
        pass
    for name in [s.strip() for s in args.encoders.split(",") if s.strip()]:
        batch = args.batch_size or (2 if args.tiny else DEFAULT_BATCH.get(name, 64))
        for precision in precisions:
            for compile_ in ([False, True] if args.compile else [False]):
                report["results"].append(bench_one(
                    name, pretrained=args.pretrained == "true", batch=batch, precision=precision, compile_=compile_,
                    device=device, frame_size=args.frame_size, warmup=warmup, iters=iters, tiny=args.tiny,
                    peak_tflops=peak, options=options,
                ))
                print(json.dumps(report["results"][-1]), file=sys.stderr, flush=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
