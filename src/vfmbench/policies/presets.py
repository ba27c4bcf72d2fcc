"""Presets: the papers' training settings as named config fragments.

A preset gives a method, its method config and train config keys; `apply_preset` merges it
under the user's own keys (which win). Settings given in epochs (passes over the training
frames) become steps once the dataset size is known:
``steps = ceil(epochs * n_frames / batch_size)``.

Paper 000 (A.2, Table 5): BC with learning rate 0.008; per task the batch size and epochs
(BC) or batch size and steps (inverse IQL). The paper's BC used 2900 trajectories on the
Fetch tasks; the preset keeps its epochs, so the step count follows your dataset.
Paper 001 (§IV-A): Adam 1e-4, batch 128, 600 epochs, random crops of 76x76, checkpoints
evaluated every 30 epochs with 50 rollouts, the mean of the best 3 reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vfmbench.policies.base import get_method_spec
from vfmbench.registry import Registry
from vfmbench.utils.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named set of config keys from a paper."""

    name: str
    method: str
    source: str
    method_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    epochs: float | None = None  # -> train.steps
    eval_every_epochs: float | None = None  # -> train.eval_every
    task: str | None = None  # the task the setting is for (None: any)

    def resolve(self, n_frames: int, batch_size: int | None = None) -> dict[str, Any]:
        """Config keys ``{method, method_config, train}`` for a dataset of `n_frames` frames.

        `batch_size` is the one the run will use (the preset's or the method's default if None).
        """
        bs = batch_size or self.method_config.get("batch_size") or _default_batch_size(self.method)
        train = dict(self.train)
        if self.epochs is not None:
            train["steps"] = _epochs_to_steps(self.epochs, n_frames, bs)
        if self.eval_every_epochs is not None:
            train["eval_every"] = _epochs_to_steps(self.eval_every_epochs, n_frames, bs)
            train.setdefault("checkpoint_every", train["eval_every"])
        return {"method": self.method, "method_config": dict(self.method_config), "train": train}


def _default_batch_size(method: str) -> int:
    return get_method_spec(method).config_cls().batch_size


def _epochs_to_steps(epochs: float, n_frames: int, batch_size: int) -> int:
    return max(1, math.ceil(epochs * n_frames / batch_size))


PRESETS: Registry[Preset] = Registry("preset")
register_preset = PRESETS.register
list_presets = PRESETS.names
get_preset = PRESETS.get


def apply_preset(name: str, config: dict[str, Any], n_frames: int) -> dict[str, Any]:
    """`config` (a RunSpec mapping) on top of preset `name`; `config`'s keys win.

    A `method` in `config` that differs from the preset's is an error.
    """
    preset = get_preset(name)
    if config.get("method") not in (None, preset.method):
        raise ConfigError(f"preset {name!r} is for method {preset.method!r}, not {config['method']!r}")
    batch_size = config.get("method_config", {}).get("batch_size")
    base = preset.resolve(n_frames, batch_size)
    merged = {**base, **config, "method": preset.method}
    for section in ("method_config", "train"):
        merged[section] = {**base[section], **config.get(section, {})}
    return merged


# -- paper 000: A.2 and Table 5 ---------------------------------------------------------------------
_P000_TASKS = {  # task: (BC batch size, BC epochs, IQL batch size, IQL steps)
    "fetch_push": (256, 1000, 1024, 60_000),
    "fetch_pick_and_place": (256, 1000, 1024, 100_000),
    "adroit_hammer": (32, 100, 256, 5000),
    "adroit_door": (32, 30, 256, 1500),
}
for _task, (_bc_bs, _bc_epochs, _iql_bs, _iql_steps) in _P000_TASKS.items():
    for _method in ("bc", "gaussian_bc"):
        register_preset(Preset(
            f"paper000_{_method}_{_task}", _method, "paper 000 §5.2, A.2, Table 5",
            method_config={"lr": 0.008, "batch_size": _bc_bs}, epochs=_bc_epochs, task=_task,
        ))
    register_preset(Preset(
        f"paper000_inverse_iql_{_task}", "inverse_iql", "paper 000 §5.3, A.2, Table 5",
        method_config={"batch_size": _iql_bs, "lr": 1.5e-4, "critic_lr": 3e-4, "value_lr": 3e-4, "expectile": 0.7},
        train={"steps": _iql_steps}, task=_task,
    ))

# -- paper 001: §IV-A ------------------------------------------------------------------------------
_P001_TRAIN = {"augment": "crop", "crop_size": 76, "eval_episodes": 50, "best_k": 3}
_P001_METHODS = {
    "bc": {"hidden": [1024], "head": [1024]},  # "a two-layer fully connected MLP"
    "bc_rnn": {"seq_len": 10},
    "dp_conv": {},
    "dp_transformer": {},
}
for _method, _extra in _P001_METHODS.items():
    register_preset(Preset(
        f"paper001_{_method}", _method, "paper 001 §III-B2, §IV-A",
        method_config={"lr": 1e-4, "batch_size": 128, **_extra}, train=dict(_P001_TRAIN),
        epochs=600, eval_every_epochs=30,
    ))
