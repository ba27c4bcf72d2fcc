"""``--mask`` on the commands: the ``samg`` wrapper added to a task config, a dataset re-collected
through it for training, and runs evaluated through it.

A mask is named ``none``, ``oracle`` or a SAM-G segmenter (``vfmbench segmenters list``); SAM-G
segmenters take a reference (``--mask-reference REF.json``; default: the task's ground truth at
seed 0).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from vfmbench.utils.errors import ConfigError

MASK_WRAPPERS = ("samg", "gt_mask")  # wrappers that mask pixels; a --mask replaces them


def mask_wrapper(mask: str, reference: str | None = None) -> dict[str, Any]:
    """The ``samg`` wrapper entry of a task config for `mask` (checked against the registry)."""
    from vfmbench.masking.segmenters import SEGMENTERS

    SEGMENTERS.get(mask)
    if mask == "oracle" and reference:
        raise ConfigError("--mask oracle reads the task's ground truth: it takes no --mask-reference")
    options: dict[str, Any] = {"segmenter": mask}
    if reference:
        options["reference"] = str(Path(reference).expanduser().resolve())
    return {"name": "samg", "options": options}


def refuse_second_mask(task_config: dict[str, Any], mask: str | None, where: str = "task_config.wrappers") -> None:
    """A ConfigError when one command is given both ``--mask`` and a masking wrapper of its own in
    `task_config` (one would silently replace, or stack on, the other)."""
    if mask is None:
        return
    given = [w["name"] if isinstance(w, dict) else w.name for w in task_config.get("wrappers", []) or []]
    clash = [n for n in given if n in MASK_WRAPPERS]
    if clash:
        raise ConfigError(f"--mask {mask} and a masking wrapper in {where} ({', '.join(clash)}) were both given: "
                          "give one (the wrapper carries segmenter options; --mask takes none)")


def with_mask(task_config: dict[str, Any], mask: str | None, reference: str | None = None) -> dict[str, Any]:
    """`task_config` (a TaskConfig mapping) with its masking wrapper replaced by `mask`'s (``none``:
    removed; None: unchanged). The masking wrapper goes first, before frame stacking."""
    if mask is None:
        return dict(task_config)
    wrappers = [w for w in task_config.get("wrappers", []) or []
                if (w["name"] if isinstance(w, dict) else w.name) not in MASK_WRAPPERS]
    if mask != "none":
        wrappers.insert(0, mask_wrapper(mask, reference))
    return {**task_config, "wrappers": wrappers}


def masked_dataset(dataset: str | Path, mask: str, reference: str | None = None, progress: bool = True) -> Path:
    """A dataset whose frames went through `mask`: `dataset` itself when its task config already
    has that mask, else the same episodes (task, seeds, expert, DART noise, count) re-collected
    through the mask into ``<dataset>.mask-<mask>`` beside it (resumable, reused when complete)."""
    from vfmbench.data.collection import CollectConfig, collect, open_dataset
    from vfmbench.utils.config import from_dict

    ds = open_dataset(dataset)
    header = ds.header
    task_config = header.get("task_config", {})
    wanted = with_mask(task_config, mask, reference)
    if wanted["wrappers"] == (task_config.get("wrappers") or []):
        return Path(ds.root)
    out = Path(str(ds.root).rstrip("/") + f".mask-{mask}")
    cfg = from_dict(CollectConfig, {
        "task": ds.task["task"], "episodes": ds.num_episodes, "seed": header.get("seed", 0),
        "keep_failures": header.get("keep_failures", False), "action_noise": header.get("action_noise", 0.0),
        "task_config": wanted}, source=f"{ds.root}/manifest.json")
    collect(cfg, out, progress=progress)
    return out


def evaluate_masked(run_dir: str | Path, mask: str, reference: str | None, *, episodes: int, envs: int,
                    step: int | None, shift: str = "none", shift_options: dict[str, Any] | None = None,
                    robustness: list[str] | None = None, robustness_options: dict[str, Any] | None = None,
                    video: str | None = None, progress: bool = True,
                    act_options: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    """Evaluate a run's checkpoint with its recorded task config, its masking replaced by `mask`:
    the main evaluation (under `shift`) and, with `robustness`, every shift on the same seeds;
    `act_options` as `load_agent`'s. Returns (EvalResult, [ShiftResult])."""
    from vfmbench.evaluation.robustness import evaluate_shifts
    from vfmbench.evaluation.rollout import evaluate
    from vfmbench.tasks import TaskConfig
    from vfmbench.training import load_agent, read_run_config
    from vfmbench.utils.config import from_dict

    config = read_run_config(run_dir)
    task = config["spec"]["task"]
    recorded = from_dict(TaskConfig, config["task_config"], source=f"{run_dir}/config.json task_config")
    task_config = from_dict(TaskConfig, with_mask(asdict(recorded), mask, reference), source="--mask")
    agent, _ = load_agent(run_dir, step, device="auto", act_options=act_options)
    result = evaluate(agent, task, task_config, episodes=episodes, n_envs=envs, video=video, progress=progress,
                      shift=shift, shift_options=shift_options or {})
    shifts: list[Any] = []
    if robustness:
        clean = result if shift == "none" else None
        shifts = evaluate_shifts(agent, task, task_config, robustness, robustness_options,
                                 episodes=episodes, n_envs=envs, progress=progress, clean=clean).results
    return result, shifts


def add_mask_args(p: Any, default: str = "no mask") -> None:
    """``--mask`` and ``--mask-reference`` for a command's parser; `default` says in words what
    happens without ``--mask``."""
    p.add_argument("--mask", help="mask observations: none, oracle or a SAM-G segmenter (vfmbench segmenters list); "
                                  f"default: {default}")
    p.add_argument("--mask-reference", metavar="REF.json",
                   help="SAM-G reference (vfmbench mask reference); default: the task's ground truth at seed 0")
