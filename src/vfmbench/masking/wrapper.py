"""The ``samg`` observation wrapper: every frame of a task masked by a segmenter (paper 002 §4:
"RL agents directly process these segmented images"), wherever the task is built through
`make_task` (collection, training data, evaluation, robustness, online RL).

    task_config.wrappers = [{"name": "samg", "options": {"segmenter": "sam_vit_b", "reference": "REF.json"}}]

Pixels outside the predicted mask are set to `fill` (0: the authors' ``obs * mask``); the mask
itself is added to the observation as ``segmentation`` (bool ``[H, W]``) for analyses. The
``oracle`` segmenter reads the task's ground-truth masks. Goal images are masked too (with
``goal=true``). Options: `segmenter`, `reference`, `fill`, `goal`, and `options`: other
`SegmenterConfig` fields (device, dtype, ablation switches, ...).
Segmenters are built once per process and options (every environment of an evaluation shares
one model). Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from vfmbench.tasks.base import Observation, Task, WrapperConfig
from vfmbench.tasks.wrappers import WRAPPERS, ObservationWrapper, WrapperSpec
from vfmbench.utils.errors import ConfigError

_SEGMENTERS: dict[tuple[Any, ...], Any] = {}  # (segmenter, task, options) -> built segmenter, per process


@dataclass
class SamGWrapperOptions:
    segmenter: str = "oracle"
    reference: str | None = None  # the reference's .json (None: the task's ground truth at seed 0)
    fill: int = 0  # value of masked-out pixels (0-255)
    goal: bool = True  # mask goal images too
    options: dict[str, Any] = field(default_factory=dict)  # SegmenterConfig fields (reference, device, ...)

    def validate(self) -> None:
        from vfmbench.masking.segmenters import SEGMENTERS, SegmenterConfig

        SEGMENTERS.get(self.segmenter)
        if not 0 <= self.fill <= 255:
            raise ConfigError(f"wrapper samg: fill must be between 0 and 255, got {self.fill}")
        known = {f.name for f in fields(SegmenterConfig)} - {"reference"}
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise ConfigError(f"wrapper samg: unknown segmenter options {unknown}; valid: {', '.join(sorted(known))}")

    @staticmethod
    def resolve_paths(options: dict[str, Any]) -> dict[str, Any]:
        """The reference and weight paths made absolute (a dataset's recorded config opens them
        from any working folder)."""
        from pathlib import Path

        out, inner = dict(options), dict(options.get("options") or {})
        for key in ("sam_weights", "dino_weights"):
            if inner.get(key):
                inner[key] = str(Path(inner[key]).expanduser().resolve())
        if inner:
            out["options"] = inner
        if out.get("reference"):
            out["reference"] = str(Path(out["reference"]).expanduser().resolve())
        return out

    def segmenter_options(self) -> dict[str, Any]:
        return {**self.options, **({"reference": self.reference} if self.reference else {})}


def shared_segmenter(name: str, options: dict[str, Any], task: str | None) -> Any:
    """The process's segmenter for (name, options, task), built on first use."""
    from vfmbench.masking.segmenters import build_segmenter

    key = (name, task if options.get("reference") is None else None, repr(sorted(options.items())))
    if key not in _SEGMENTERS:
        _SEGMENTERS[key] = build_segmenter(name, options, task=task)
    return _SEGMENTERS[key]


class SamGWrapper(ObservationWrapper):
    """``pixels`` (and ``goal_pixels``) outside the segmenter's mask set to `fill`; the mask as
    ``segmentation``."""

    def __init__(self, task: Task, config: WrapperConfig):
        super().__init__(task, config)
        self.opts: SamGWrapperOptions = WRAPPERS.get(config.name).options(config.options)
        self.segmenter = shared_segmenter(self.opts.segmenter, self.opts.segmenter_options(), getattr(task, "name", None))

    def _mask(self, pixels: np.ndarray, truth: Any) -> np.ndarray:
        if pixels.shape[-1] != 3:
            raise ConfigError("wrapper samg masks single RGB frames: put it before frame_stack in task_config.wrappers")
        if self.segmenter.needs_truth and truth is None:
            truth = self.task.mask()
        return self.segmenter.segment(pixels[None], None if truth is None else np.asarray(truth)[None])[0]

    def observation(self, obs: Observation) -> Observation:
        out = dict(obs)
        mask = self._mask(obs["pixels"], obs.get("mask"))
        out["pixels"] = np.where(mask[..., None], obs["pixels"], np.uint8(self.opts.fill))
        out["segmentation"] = mask
        if self.opts.goal and "goal_pixels" in obs:
            if self.segmenter.needs_truth and "goal_mask" not in obs:
                raise ConfigError("wrapper samg with the oracle masks goal images with their ground-truth masks: "
                                  "set task_config.masks=true (or the wrapper option goal=false)")
            goal = self._mask(obs["goal_pixels"], obs.get("goal_mask"))
            out["goal_pixels"] = np.where(goal[..., None], obs["goal_pixels"], np.uint8(self.opts.fill))
        return out


WRAPPERS.register(WrapperSpec("samg", "pixels outside a segmenter's mask of the task-relevant objects set to a fill "
                              "value (SAM-G, paper 002; segmenter=oracle|sam_vit_b|...; vfmbench segmenters list)",
                              SamGWrapper, SamGWrapperOptions))
