"""SAM-G masking throughput: frames/s of each segmenter at the tasks' 84 x 84 frames, batched
(image embeddings of SAM and DINOv2 once per frame in batches, prompts and the three decoding
rounds batched across frames) against a batch-1, frame-by-frame loop like the authors'
environment wrapper, in the same process; the agreement (IoU) of the two's masks; and the SAM
image encoder's throughput as a fraction of the bf16 FLOP bound (a dense bf16 matmul measured
in the same run); and the milliseconds per frame of each stage on one batch. Prints JSON and writes it to ``--out``.

    python benchmarks/masking.py --out masking.json                  # GPU: sam_vit_b + DINOv2-B, bf16
    python benchmarks/masking.py --tiny --frames 8 --loop-frames 4   # CPU smoke run (toy sizes)

Weights: the installed ones (``vfmbench weights download sam_vit_b dinov2_vitb14``), else random
weights of the same architectures (``--random-weights``; speed does not depend on the weights, masks do).
Frames: held-out fetch_push episodes (clean), the reference from the task's ground truth.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoders import matmul_tflops, sig  # noqa: E402  (benchmarks/encoders.py)

from vfmbench.masking.quality import episode_frames, iou  # noqa: E402
from vfmbench.encoders.sam_attention import ATTENTION_MODES, DEFAULT_ATTENTION, sam_attention_mode, set_sam_attention  # noqa: E402
from vfmbench.masking.sam_model import PromptableSam  # noqa: E402
from vfmbench.masking.segmenters import SEGMENTERS, build_segmenter  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batched(seg: Any, frames: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    seg.segment(frames[: seg.batch_size])  # warm-up (and compilation)
    dev = seg.model.sam.device
    _sync(dev)
    t = time.perf_counter()
    for _ in range(repeats):
        masks = seg.segment(frames)
    _sync(dev)
    return len(frames) * repeats / (time.perf_counter() - t), masks


def time_loop(seg: Any, frames: np.ndarray) -> tuple[float, np.ndarray]:
    """One frame at a time, as an environment wrapper masks each observation it returns."""
    model, dev = seg.model, seg.model.sam.device
    model.segment(torch.from_numpy(frames[:1]))
    _sync(dev)
    t = time.perf_counter()
    out = [model.segment(torch.from_numpy(f[None])).masks.cpu().numpy() for f in frames]
    _sync(dev)
    return len(frames) / (time.perf_counter() - t), np.concatenate(out)


def stage_times(seg: Any, frames: np.ndarray, iters: int) -> dict[str, float]:
    """Milliseconds per frame of each SAM-G stage on one batch of `frames`: SAM's image
    embedding, DINOv2's features, the similarity maps, the decoding rounds (prompts included)."""
    model = seg.model
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(model.sam.device)
    hw = (x.shape[1], x.shape[2])
    emb = model.sam.embed(x)
    dino = model.dino(x) if model.dino is not None else None
    sims = model.similarity_maps(emb, dino, hw)
    stages = {"sam_embedding": lambda: model.sam.embed(x),
              "dino_features": (lambda: model.dino(x)) if model.dino is not None else None,
              "similarity_maps": lambda: model.similarity_maps(emb, dino, hw),
              "decoding_rounds": lambda: model.decode_rounds(emb, *sims, hw)}
    out = {}
    with torch.no_grad():
        for name, fn in stages.items():
            if fn is None:
                continue
            fn()
            _sync(x.device)
            t = time.perf_counter()
            for _ in range(iters):
                fn()
            _sync(x.device)
            out[name] = sig(1000 * (time.perf_counter() - t) / iters / len(frames))
    return out


def encoder_fraction(seg: Any, batch: int, peak_tflops: float, iters: int) -> dict[str, Any]:
    """The segmenter's SAM image encoder alone on ``batch`` frames (preprocessing included), bf16
    weights. Timed first, then FLOPs counted (the counting pass, and SAM's ViT switched to its eager
    attention for it, would make a compiled encoder compile again): SAM's ViT on its eager attention
    (the FLOP counter cannot trace flex_attention, and concat's padded query-key product is not the
    model's arithmetic)."""
    sam = seg.model.sam
    dev = sam.device
    frames = torch.randint(0, 256, (batch, 84, 84, 3), dtype=torch.uint8, device=dev)
    for _ in range(2):
        sam.embed(frames)
    _sync(dev)
    t = time.perf_counter()
    for _ in range(iters):
        sam.embed(frames)
    _sync(dev)
    rate = batch * iters / (time.perf_counter() - t)
    vit = sam.model.vision_encoder if isinstance(sam, PromptableSam) else None
    mode = sam_attention_mode(vit) if vit is not None else None
    if vit is not None:
        set_sam_attention(vit, "eager")
    with FlopCounterMode(display=False) as counter:
        sam.embed(frames[:1])
    flops = counter.get_total_flops()
    if vit is not None:
        set_sam_attention(vit, mode)
    return {"batch": batch, "gflop_per_image": sig(flops / 1e9), "images_per_s": sig(rate),
            "fraction_of_bf16_matmul_peak": sig(flops * rate / 1e12 / peak_tflops)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--segmenters", default="sam_vit_b")
    p.add_argument("--frames", type=int, default=512, help="frames timed batched")
    p.add_argument("--loop-frames", type=int, default=64, help="frames timed one by one")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--encoder-batch", type=int, default=16,
                   help="batch of the encoder-alone timing (with --compile, --batch avoids another compilation)")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--attention", default=DEFAULT_ATTENTION, choices=ATTENTION_MODES,
                   help="SAM's ViT image-encoder attention path (the segmenter option attention; SAM 1 only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the image encoders (the segmenter option compile)")
    p.add_argument("--random-weights", action="store_true", help="random weights (else the installed ones)")
    p.add_argument("--tiny", action="store_true", help="toy sizes on the CPU")
    p.add_argument("--out")
    args = p.parse_args(argv)

    frames, _ = episode_frames("fetch_push", "none", episodes=max(1, args.frames // 50 + 1), every=1)
    frames = frames[: args.frames]
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    n = 1024 if args.tiny else 8192
    peak = matmul_tflops(device, torch.bfloat16, n, iters=3 if args.tiny else 20)
    doc: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
                           "torch": torch.__version__, "frames": len(frames), "frame_size": list(frames.shape[1:3]),
                           "dtype": args.dtype, "bf16_matmul_tflops": sig(peak), "segmenters": []}
    for name in [s.strip() for s in args.segmenters.split(",")]:
        options = {"device": str(device), "dtype": args.dtype, "batch_size": args.batch, "pretrained": not args.random_weights,
                   "tiny": args.tiny, "persam_steps": 50 if args.tiny else 1000, "compile": args.compile}
        vit = SEGMENTERS.get(name).weights in ("sam_vit_b", "sam_vit_l", "sam_vit_h")  # SAM 1: the attention path
        if vit:
            options["attention"] = args.attention
        seg = build_segmenter(name, options, task="fetch_push")
        fps, batched = time_batched(seg, frames, args.repeats)
        loop_fps, looped = time_loop(seg, frames[: args.loop_frames])
        agree = iou(batched[: args.loop_frames], looped)
        row = {"segmenter": name, "attention": args.attention if vit else None, "compile": args.compile,
               "pretrained": not args.random_weights, "batch": args.batch, "frames_per_s": sig(fps),
               "loop_frames_per_s": sig(loop_fps), "speedup": sig(fps / loop_fps),
               "agreement_iou_mean": sig(float(agree.mean())), "agreement_iou_min": sig(float(agree.min())),
               "ms_per_frame": stage_times(seg, frames[: args.batch], 2 if args.tiny else 5),
               "encoder": encoder_fraction(seg, 4 if args.tiny else args.encoder_batch, peak, 2 if args.tiny else 10)}
        doc["segmenters"].append(row)
        print(json.dumps(row), file=sys.stderr)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
