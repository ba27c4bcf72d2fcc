"""Every learner on one dataset, several seeds, in parallel worker processes: success rate per
run and mean ± std over seeds. Prints JSON (and keeps every run folder under --out).

    MUJOCO_GL=egl python benchmarks/learners.py --dataset DATA --encoder state \
        --methods bc,gaussian_bc,bc_rnn,inverse_iql,dp_conv,dp_transformer --seeds 0,1,2 \
        --steps 20000 --steps-for dp_conv=8000,dp_transformer=8000 --episodes 50 --workers 18 --out RUNS

Each run is `vfmbench train` with the method's defaults (the papers' settings) and
``train.steps``, evaluated on 50 held-out episodes at the end. Reruns resume unfinished runs.

``--variant LABEL:KEY=VALUE,...`` (repeatable) runs every method and seed once per variant with
those config keys (a sweep, e.g. ``--variant b0:method_config.beta=0 --variant b3:method_config.beta=3``);
every row then reports the milliseconds per training step measured from the run's metrics
(after its first `--warmup` steps, so that compiling is left out), e.g. for the speed of
``train.precision`` and ``train.compile``::

    python benchmarks/learners.py --dataset DATA --methods dp_conv --seeds 0 --steps 400 --episodes 1 \
        --workers 1 --variant fp32: --variant bf16:train.precision=bfloat16 \
        --variant compiled:train.compile=true --variant compiled_bf16:train.compile=true,train.precision=bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``LABEL:KEY=VALUE,KEY=VALUE`` -> (label, ["KEY=VALUE", ...])."""
    label, _, keys = text.partition(":")
    return label, [kv for kv in keys.split(",") if kv]


def ms_per_step(metrics: Path, warmup: int) -> float | None:
    """Wall milliseconds per training step between the first logged step after `warmup` and the last."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []
    rows = [r for r in rows if r["step"] >= warmup]
    if len(rows) < 2:
        return None
    return round(1000 * (rows[-1]["time"] - rows[0]["time"]) / (rows[-1]["step"] - rows[0]["step"]), 2)


def run_one(args: argparse.Namespace, method: str, seed: int, steps: int, variant: tuple[str, list[str]]) -> dict:
    label, keys = variant
    out = Path(args.out) / (f"{method}_{label}_s{seed}" if label else f"{method}_s{seed}")
    cmd = [sys.executable, "-m", "vfmbench", "train", "--dataset", args.dataset, "--encoder", args.encoder,
           "--method", method, "--seed", str(seed), "--out", str(out), "--no-progress",
           "--set", f"train.steps={steps}", "--set", "train.eval_every=0",
           "--set", f"train.eval_episodes={args.episodes}", "--set", f"train.device={args.device}",
           *[x for kv in [*args.set, *keys] for x in ("--set", kv)]]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    row = {"method": method, "variant": label, "seed": seed, "steps": steps, "seconds": round(time.time() - t0, 1)}
    result = out / "result.json"
    if proc.returncode != 0 or not result.exists():
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        if (out / "evals.json").exists():  # evaluations before it stopped
            row["evals"] = json.loads((out / "evals.json").read_text())
        return row
    record = json.loads(result.read_text())
    evals = record.get("evals") or []
    row["success"] = evals[-1]["success_rate"] if evals else None
    row["train_seconds"] = record.get("train_seconds")
    row["ms_per_step"] = ms_per_step(out / "metrics.jsonl", args.warmup)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--encoder", default="state")
    p.add_argument("--methods", default="bc,gaussian_bc,bc_rnn,inverse_iql,dp_conv,dp_transformer")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--steps-for", default="", help="per-method steps, e.g. dp_conv=8000,dp_transformer=8000")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--set", action="append", default=[], help="extra config keys for every run")
    p.add_argument("--variant", action="append", default=[], help="LABEL:KEY=VALUE,... (repeatable): a sweep axis")
    p.add_argument("--warmup", type=int, default=100, help="steps left out of ms_per_step (compiling)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    per = {k: int(v) for k, v in (kv.split("=") for kv in args.steps_for.split(",") if kv)}
    variants = [parse_variant(v) for v in args.variant] or [("", [])]
    jobs = [(m, int(s), per.get(m, args.steps), v) for m in args.methods.split(",") for s in args.seeds.split(",")
            for v in variants]
    # the slowest first, so the pool ends together
    jobs.sort(key=lambda j: -j[2] * (10 if j[0].startswith("dp_") else 1))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    log = Path(args.out) / "runs.jsonl"  # one line per finished run, so a cut-off sweep keeps them

    def job(j: tuple[str, int, int, tuple[str, list[str]]]) -> dict:
        row = run_one(args, *j)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(job, jobs))
    summary = {}
    for m, (label, _) in ((m, v) for m in args.methods.split(",") for v in variants):
        vals = [r["success"] for r in rows if r["method"] == m and r["variant"] == label and r.get("success") is not None]
        if vals:
            summary[f"{m}:{label}" if label else m] = {
                "mean": round(statistics.mean(vals), 3),
                "std": round(statistics.stdev(vals), 3) if len(vals) > 1 else 0.0, "seeds": len(vals)}
    print(json.dumps({"dataset": args.dataset, "encoder": args.encoder, "episodes": args.episodes,
                      "runs": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
