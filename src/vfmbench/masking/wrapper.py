"""The ``samg`` observation wrapper: every frame of a task masked by a segmenter (paper 002 §4:
"RL agents directly process these segmented images"), wherever the task is built through
`make_task` (collection, training data, evaluation, robustness, online RL).

    task_config.wrappers = [{"name": "samg", "options": {"segmenter": "sam_vit_b", "reference": "REF.json"}}]

Pixels outside the predicted mask are set to `fill` (0: the authors' ``obs * mask``); the mask
itself is added to the observation as ``segmentation`` (bool ``[H, W]``) for analyses. The
``oracle`` segmenter reads the task's ground-truth masks. Goal images are masked too (with
``goal=true``). Options: `segmenter`, `reference`, `fill`, `goal`, `dilate` (grow the masks by so many
pixels), and `options`: other
`SegmenterConfig` fields (device, dtype, ablation switches, ...).
Segmenters are built once per process and options (every environment of an evaluation shares
one model). Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from vfmbench.tasks.base import Observation, Task, WrapperConfig
from vfmbench.tasks.wrappers import WRAPPERS, ObservationWrapper, WrapperSpec, dilate_masks
from vfmbench.utils.errors import ConfigError

_SEGMENTERS: dict[tuple[Any, ...], Any] = {}  # (segmenter, task, options) -> built segmenter, per process


@dataclass
class SamGWrapperOptions:
    segmenter: str = "oracle"
    reference: str | None = None  # the reference's .json (None: the task's ground truth at seed 0)
    fill: int = 0  # value of masked-out pixels (0-255)
    goal: bool = True  # mask goal images too
    dilate: int = 0  # grow the masks by this many pixels
    options: dict[str, Any] = field(default_factory=dict)  # SegmenterConfig fields (reference, device, ...)

    def validate(self) -> None:
        from vfmbench.masking.segmenters import SEGMENTERS, SegmenterConfig

        SEGMENTERS.get(self.segmenter)
        if not 0 <= self.fill <= 255:
            raise ConfigError(f"wrapper samg: fill must be between 0 and 255, got {self.fill}")
        if self.dilate < 0:
            raise ConfigError(f"wrapper samg: dilate must be 0 or more pixels, got {self.dilate}")
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

    def _masks(self, wrappers: Sequence["SamGWrapper"], pixels: list[np.ndarray], truths: list[Any]) -> np.ndarray:
        """Masks ``[B, H, W]`` (bool) of one frame per wrapper, in one segmenter call."""
        if pixels[0].shape[-1] != 3:
            raise ConfigError("wrapper samg masks single RGB frames: put it before frame_stack in task_config.wrappers")
        truth = None
        if self.segmenter.needs_truth:
            truth = np.stack([w.task.mask() if t is None else np.asarray(t) for w, t in zip(wrappers, truths)])
        return dilate_masks(self.segmenter.segment(np.stack(pixels), truth), self.opts.dilate)

    def observation(self, obs: Observation) -> Observation:
        return self.observations([self], [obs], reset=False)[0]

    @classmethod
    def observations(cls, wrappers: Sequence[ObservationWrapper], obs: Sequence[Observation],
                     reset: bool) -> list[Observation]:
        """All environments' frames (and goal images) segmented in one batched call."""
        first: SamGWrapper = wrappers[0]  # type: ignore[assignment]
        fill = np.uint8(first.opts.fill)
        masks = first._masks(wrappers, [o["pixels"] for o in obs], [o.get("mask") for o in obs])  # type: ignore[arg-type]
        out = [{**o, "pixels": np.where(m[..., None], o["pixels"], fill), "segmentation": m} for o, m in zip(obs, masks)]
        if first.opts.goal and "goal_pixels" in obs[0]:
            if first.segmenter.needs_truth and "goal_mask" not in obs[0]:
                raise ConfigError("wrapper samg with the oracle masks goal images with their ground-truth masks: "
                                  "set task_config.masks=true (or the wrapper option goal=false)")
            goals = first._masks(wrappers, [o["goal_pixels"] for o in obs], [o.get("goal_mask") for o in obs])  # type: ignore[arg-type]
            for o, g in zip(out, goals):
                o["goal_pixels"] = np.where(g[..., None], o["goal_pixels"], fill)
        return out


WRAPPERS.register(WrapperSpec("samg", "pixels outside a segmenter's mask of the task-relevant objects set to a fill "
                              "value (SAM-G, paper 002; segmenter=oracle|sam_vit_b|...; vfmbench segmenters list)",
                              SamGWrapper, SamGWrapperOptions))
