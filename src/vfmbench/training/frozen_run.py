"""The encoder of a trained run, frozen: the registry entry ``frozen_run`` (encoder options
``run``, ``step``, ``sha256``). Visual Alignment Testing trains ``pi0->1`` on it (`vfmbench.analysis.vat`),
and any run trained on it (``vfmbench evaluate --run``) loads it back through this entry."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from vfmbench.encoders import Encoder, EncoderSpec, register_encoder
from vfmbench.utils.errors import ConfigError, VfmbenchError

FROZEN_RUN = "frozen_run"


def encoder_digest(encoder: torch.nn.Module) -> str:
    """SHA-256 of an encoder's tensors (names, shapes, dtypes and bytes, in name order)."""
    h = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{list(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FrozenRunEncoder(Encoder):
    """The encoder of a trained run (its checkpoint `step`, default the latest), frozen: uint8
    ``[B, H, W, C]`` -> ``[B, D]`` as in the run, its training augmentation in evaluation mode
    (a random shift is the identity, a random crop the centre crop).

    `sha256` (`encoder_digest` of the weights) is checked when given, so a run trained on this
    encoder refuses to load once the source run's weights have changed. Raises VfmbenchError
    for a folder that is no finished run, a missing step or a changed digest."""

    def __init__(self, run: str, step: int | None = None, sha256: str | None = None):
        super().__init__()
        from vfmbench.training import load_agent

        check_step(run, step)
        agent, _ = load_agent(run, step)
        inner = agent.encoder.eval().requires_grad_(False)
        digest = encoder_digest(inner)
        if sha256 is not None and sha256 != digest:
            raise VfmbenchError(f"the encoder of {run} (step {step}) has other weights than when this run was "
                                f"trained (sha256 {digest[:12]}..., recorded {sha256[:12]}...); train pi0->1 again "
                                "into a new folder")
        self.inner = inner
        self.name, self.family, self.input_key = FROZEN_RUN, inner.family, inner.input_key
        self.embed_dim, self.preprocessing = inner.embed_dim, inner.preprocessing
        self.trainable, self.pretrained = False, True
        self.weights_id = f"sha256:{digest}"
        self.source = {"run": str(run), "step": step, "encoder": inner.name}

    def train(self, mode: bool = True) -> "FrozenRunEncoder":
        super().train(mode)
        self.inner.eval()  # frozen: never the training augmentation
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner(images)

    def spatial_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner.spatial_features(images)

    def options(self) -> dict[str, Any]:
        return {"source_encoder": self.inner.name}


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """The checkpoint steps a run folder holds, ascending (empty for none)."""
    from vfmbench.training.checkpoint import list_checkpoints

    return sorted(int(c.name.split("_")[1]) for c in list_checkpoints(Path(run_dir)))


def check_step(run_dir: str | Path, step: int | None, option: str = "step") -> None:
    """VfmbenchError naming the steps that exist when `run_dir` has checkpoints but none for
    `step` (None: the latest; a folder without checkpoints is left to the loader's error). `option` is how the caller spells it
    (e.g. ``--step``)."""
    if not Path(run_dir).is_dir():
        return  # the loader says the folder is missing
    steps = checkpoint_steps(run_dir)
    if not steps:
        return  # no run, or one without checkpoints: the loader says which
    if step is not None and step not in steps:
        raise VfmbenchError(f"{run_dir} has no checkpoint for {option} {step}; its checkpoints are at steps "
                            f"{', '.join(map(str, steps))} (leave {option} out for the latest, {steps[-1]})")


def _frozen_run(pretrained: bool = False, run: str = "", step: int | None = None,
                sha256: str | None = None) -> Encoder:
    if not run:
        raise ConfigError(f"encoder {FROZEN_RUN!r} needs encoder_options.run: a finished run folder")
    return FrozenRunEncoder(run, step, sha256)


register_encoder(EncoderSpec(FROZEN_RUN, "run", "the encoder of a trained run (encoder_options.run, .step), frozen "
                             "(Visual Alignment Testing's pi0->1)", _frozen_run, embed_dim=0))


def frozen_run_options(run_dir: str | Path) -> dict[str, Any]:
    """`FrozenRunEncoder` options for a finished run: its folder (absolute), latest checkpoint step
    and encoder digest. Raises VfmbenchError for a folder that is not a finished run."""
    from vfmbench.training import load_agent, read_train_record
    from vfmbench.training.checkpoint import list_checkpoints

    run_dir = Path(run_dir).resolve()
    read_train_record(run_dir)  # a clear error unless training finished
    step = int(list_checkpoints(run_dir)[-1].name.split("_")[1])
    agent, _ = load_agent(run_dir, step)
    return {"run": str(run_dir), "step": step, "sha256": encoder_digest(agent.encoder)}
