"""Robustness: one policy evaluated under several shifts on the same seeds, with the drop in
success against the clean task (``none``).

The same evaluation seeds are used under every shift, so object and goal placements match and
the drop is a paired difference; its standard error is that of the per-episode differences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vfmbench.evaluation.rollout import EVAL_SEED_BASE, EvalResult, evaluate
from vfmbench.tasks import TaskConfig
from vfmbench.tasks.shifts import get_shift_spec
from vfmbench.agents import Agent

ALL_SHIFTS = ("none", "distractor", "color_easy", "color_hard", "video_easy", "video_hard")


@dataclass
class ShiftResult:
    """Success under one shift and its drop against ``none`` (fractions of episodes)."""

    shift: str
    success_rate: float
    success_any_rate: float
    drop: float  # success under none minus success under this shift (same seeds)
    drop_se: float  # standard error of the paired per-episode difference
    episodes: int
    seconds: float
    shift_options: dict[str, Any]  # the shift's full options


@dataclass
class RobustnessReport:
    """Results of `evaluate_shifts`, ``none`` first."""

    task: str
    seeds: list[int]
    results: list[ShiftResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One formatted row per shift, for tables."""
        return [
            {
                "shift": r.shift,
                "success": f"{r.success_rate:.2f}",
                "any_step": f"{r.success_any_rate:.2f}",
                "drop": "-" if r.shift == "none" else f"{r.drop:+.2f} ± {r.drop_se:.2f}",
                "episodes": r.episodes,
                "seconds": f"{r.seconds:.0f}",
            }
            for r in self.results
        ]


def evaluate_shifts(
    agent: Agent,
    task: str,
    task_config: TaskConfig | dict[str, Any] | None = None,
    shifts: Sequence[str] = ALL_SHIFTS,
    shift_options: Mapping[str, Mapping[str, Any]] | None = None,
    episodes: int = 20,
    seed: int = EVAL_SEED_BASE,
    n_envs: int = 10,
    progress: bool = True,
    clean: EvalResult | None = None,
) -> RobustnessReport:
    """Evaluate `agent` on `task` under ``none`` and each of `shifts` with the same seeds.

    `shift_options` maps a shift name to its options (e.g. ``{"distractor": {"count": 3}}``).
    `clean`: an evaluation under ``none`` on the same seeds already made (it is reused).
    Returns success rates and the paired drop against ``none`` for every shift.
    """
    options = {name: dict(opts) for name, opts in (shift_options or {}).items()}
    order = ["none", *[s for s in dict.fromkeys(shifts) if s != "none"]]
    for name in [*order, *options]:
        get_shift_spec(name)  # unknown names fail before any rollout
    results: dict[str, EvalResult] = {}
    if clean is not None:
        if clean.shift != "none" or clean.seeds != [seed + i for i in range(episodes)]:
            raise ValueError("the clean evaluation passed to evaluate_shifts must use shift none and the same seeds")
        results["none"] = clean
    for name in order:
        if name not in results:
            results[name] = evaluate(
                agent, task, task_config, episodes=episodes, seed=seed, n_envs=n_envs,
                progress=progress, shift=name, shift_options=options.get(name),
            )
    clean = np.asarray(results["none"].successes, float)
    rows = []
    for name, res in results.items():
        diff = clean - np.asarray(res.successes, float)
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        rows.append(
            ShiftResult(name, res.success_rate, res.success_any_rate, float(diff.mean()), se, res.episodes,
                        res.seconds, dataclasses.asdict(get_shift_spec(name).options(options.get(name))))
        )
    return RobustnessReport(task, results["none"].seeds, rows)
