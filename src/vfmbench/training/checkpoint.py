"""Checkpoints: safetensors for tensors, JSON for everything else. Nothing pickled.

``run_dir/checkpoints/step_000500/`` holds ``model.safetensors`` (the agent without a frozen
encoder), ``optim.safetensors`` + ``state.json`` (optimiser state, RNG, step) for resuming.
Each checkpoint is written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vfmbench.utils.errors import VfmbenchError
from vfmbench.utils import io
from vfmbench.utils.io import read_json, write_json_atomic


def _flatten_optimizers(optimizers: list[torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], list[Any]]:
    tensors: dict[str, torch.Tensor] = {}
    meta: list[Any] = []
    for i, opt in enumerate(optimizers):
        sd = opt.state_dict()
        scalars: dict[str, Any] = {}
        for pid, pstate in sd["state"].items():
            for name, value in pstate.items():
                if torch.is_tensor(value):
                    tensors[f"{i}.{pid}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{pid}.{name}"] = value
        meta.append({"param_groups": sd["param_groups"], "scalars": scalars})
    return tensors, meta


def _restore_optimizers(optimizers: list[torch.optim.Optimizer], tensors: dict[str, torch.Tensor], meta: list[Any]) -> None:
    if len(meta) != len(optimizers):
        raise VfmbenchError(f"checkpoint has {len(meta)} optimiser states, the method has {len(optimizers)}")
    for i, (opt, m) in enumerate(zip(optimizers, meta)):
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            oi, pid, name = key.split(".", 2)
            if int(oi) == i:
                state.setdefault(int(pid), {})[name] = value
        for key, value in m["scalars"].items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        opt.load_state_dict({"state": state, "param_groups": m["param_groups"]})


def save_checkpoint(run_dir: Path, step: int, model_state: dict[str, torch.Tensor],
                    optimizers: list[torch.optim.Optimizer], extra: dict[str, Any]) -> Path:
    """Write checkpoint `step` atomically; returns its folder."""
    root = run_dir / "checkpoints"
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}_{os.getpid()}_{time.time_ns()}"
    tmp.mkdir(parents=True)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = _flatten_optimizers(optimizers)
        opt_tensors["rng.torch"] = torch.get_rng_state()
        save_file(opt_tensors, str(tmp / "optim.safetensors"))
        write_json_atomic(tmp / "state.json", {"step": step, "optimizers": opt_meta, **extra})
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove_stale_temporaries(run_dir: Path) -> None:
    """Remove half-written checkpoint folders and JSON temporaries of processes that have ended."""
    io.remove_stale_temporaries(run_dir)
    root = run_dir / "checkpoints"
    for tmp in root.glob(".tmp_step_*") if root.exists() else []:
        parts = tmp.name.split("_")  # ".tmp", "step", "<step>", "<pid>", "<ns>"
        if len(parts) != 5 or not parts[3].isdigit() or not io.pid_alive(int(parts[3])):
            shutil.rmtree(tmp, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("step_") and (p / "state.json").exists())


def _what_to_do(ckpt: Path) -> str:
    """Advice for a damaged checkpoint `ckpt`: resume from an earlier one where the run has one,
    else train the run again (its folder removed: nothing in it can be resumed)."""
    earlier = [c for c in list_checkpoints(ckpt.parent.parent) if c.name < ckpt.name]
    if earlier:
        return f"delete {ckpt} to resume from {earlier[-1].name}"
    return f"it is the run's only checkpoint: delete the run folder {ckpt.parent.parent} and train again"


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise VfmbenchError(f"{path} is missing; the checkpoint is incomplete ({_what_to_do(path.parent)})")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type for truncated or garbled files
        raise VfmbenchError(f"{path} is damaged ({exc}); {_what_to_do(path.parent)}") from None


def load_model_state(ckpt: Path, module: torch.nn.Module, expected: set[str]) -> None:
    """Load ``ckpt/model.safetensors`` into `module`, which must hold exactly the keys `expected`
    (a checkpoint stores everything but a frozen encoder): missing, extra or misshapen tensors
    are a `VfmbenchError` naming the file and the keys, never a silent partial load."""
    path = ckpt / "model.safetensors"
    state = _read_tensors(path)
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        parts = [f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}" if missing else "",
                 f"unexpected {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}" if extra else ""]
        raise VfmbenchError(f"{path} does not fit the run's model ({'; '.join(p for p in parts if p)}); "
                            "it belongs to another run or another vfmbench version")
    try:
        module.load_state_dict(state, strict=False)  # strict on `expected`, checked above
    except RuntimeError as exc:
        raise VfmbenchError(f"{path} does not fit the run's model: {exc}") from None


def load_training_state(ckpt: Path, optimizers: list[torch.optim.Optimizer]) -> dict[str, Any]:
    """Restore optimisers and the torch RNG from `ckpt`; returns its state.json."""
    try:
        state = read_json(ckpt / "state.json")
    except (OSError, ValueError) as exc:
        raise VfmbenchError(f"{ckpt / 'state.json'} is unreadable ({exc}); {_what_to_do(ckpt)}") from None
    tensors = _read_tensors(ckpt / "optim.safetensors")
    torch.set_rng_state(tensors.pop("rng.torch"))
    _restore_optimizers(optimizers, tensors, state["optimizers"])
    return state


def prune_checkpoints(run_dir: Path, keep: set[Path]) -> None:
    """Delete checkpoints not in `keep` (the latest and the best ones are kept by the trainer)."""
    for ckpt in list_checkpoints(run_dir):
        if ckpt not in keep:
            shutil.rmtree(ckpt, ignore_errors=True)
