"""Online RL throughput: environment frames/s with updates, and updates/s alone.

    MUJOCO_GL=egl python benchmarks/rl.py --device cpu
    MUJOCO_GL=egl python benchmarks/rl.py --device cuda --agent drqv2 pieg

For each agent: trains DrQ-v2's (or PIE-G's, random ResNet-18 weights unless installed) full-size
networks with the paper's batch on `--task` for `--frames` frames from scratch with updates from
the first frames (seed frames shortened to 1,000 so most of the time is spent learning), and
times (1) the training loop, frames/s including rendering, stepping, replay sampling and
updates, and (2) `--updates` updates alone on replay batches. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="dmc_cartpole_swingup")
    p.add_argument("--agent", nargs="+", default=["drqv2"], choices=["drqv2", "pieg"])
    p.add_argument("--device", default="auto")
    p.add_argument("--frames", type=int, default=4000, help="frames of the timed training loop")
    p.add_argument("--updates", type=int, default=100, help="updates of the update-only timing")
    args = p.parse_args()

    from vfmbench.encoders import get_encoder_spec
    from vfmbench.rl import AgentConfig, RLRunSpec, RLTrainer, preset_overrides
    from vfmbench.rl.build import resolve_device

    device = resolve_device(args.device)
    out = {"task": args.task, "device": str(device), "host": platform.node(), "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "cpu_threads": torch.get_num_threads(), "agents": {}}
    for agent in args.agent:
        cfg = AgentConfig(**{**preset_overrides("drqv2", agent, args.task), "seed_frames": 1000, "explore_frames": 1000})
        pretrained = None
        if agent == "pieg" and get_encoder_spec("imagenet_resnet18").weights_status() != "installed":
            pretrained = False
        spec = RLRunSpec(task=args.task, agent=agent, pretrained=pretrained, frames=args.frames, device=str(device),
                         agent_config=cfg, eval_every_frames=0, eval_episodes=0, checkpoint_every_frames=10**9)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = RLTrainer(spec, tmp, progress=False)
            t0 = time.perf_counter()
            record = trainer.run()
            loop_seconds = time.perf_counter() - t0
            # updates alone, on batches from the filled buffer
            rng = np.random.default_rng(0)
            batches = [trainer.buffer.sample(cfg.batch_size, rng) for _ in range(8)]
            trainer.agent.update(batches[0], 10**6)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for i in range(args.updates):
                trainer.agent.update(batches[i % len(batches)], 10**6)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            upd = args.updates / (time.perf_counter() - t0)
        out["agents"][agent] = {
            "encoder": record.encoder_label, "batch_size": cfg.batch_size, "frames": record.frames,
            "updates": record.updates, "loop_seconds": round(loop_seconds, 1),
            "frames_per_second_with_updates": record.frames_per_second, "updates_per_second": round(upd, 1),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
