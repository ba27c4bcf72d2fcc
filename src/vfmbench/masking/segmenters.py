"""The segmenter registry (`SEGMENTERS`, ``vfmbench segmenters list``).

A segmenter turns uint8 frames ``[B, H, W, 3]`` into bool masks ``[B, H, W]`` of the task-relevant
objects (`Segmenter.segment`). Entries:

- ``oracle``: the task's ground-truth masks (MuJoCo segmentation of the task's mask groups), the
  upper bound of every table; it needs those masks (`segment(frames, truth=...)`).
- ``sam_vit_b`` / ``sam_vit_l`` / ``sam_vit_h``: SAM-G (`vfmbench.masking.samg`) on the official
  Segment Anything checkpoints, loaded whole (image encoder, prompt encoder, mask decoder) from the
  weight sets the ``sam_vit_*`` encoders use, with DINOv2 ViT-B/14 features (``dinov2_vitb14``);
- ``sam2_hiera_t`` / ``sam2_hiera_s`` / ``sam2_hiera_bp`` (Hiera-B+) / ``sam2_hiera_l``: the same
  method on Segment Anything 2.1 in image mode (`vfmbench.masking.sam2_model`), from the official
  ``sam2.1_hiera_*.pt`` files (weight sets of the same names; their video-memory modules are not
  loaded). The option ``attention`` is SAM 1's and is refused for them.

The distilled SAMs the paper compares (EfficientViT-SAM-L1, its default; MobileSAM; EfficientSAM)
are not entries: docs/masking.md says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np

from vfmbench.registry import Registry
from vfmbench.utils.errors import ConfigError


@dataclass
class SegmenterConfig:
    """How to build a segmenter: `reference` is the reference's .json (None: made from the task's
    ground truth at its seed 0 when the segmenter is built for a task); `pretrained` False gives
    random weights (tests, benchmarks); `sam_weights` / `dino_weights` a file of one's own;
    `dino` the DINOv2 encoder entry; `device` "auto" (CUDA when available), "cpu", "cuda", ...;
    `dtype` of the models ("float32" or "bfloat16"); `attention` SAM's image-encoder attention path
    ("concat", the default, "eager", "auto", "flex": `vfmbench.encoders.sam_attention`; SAM 1 only,
    the SAM 2 segmenters refuse other values than the default); `compile` ``torch.compile``s the
    image encoders (SAM's or SAM 2's, and DINOv2's) in place, for CUDA (each new batch size compiles
    once, a minute or more; docs/masking.md has the measured gain); ablation switches and PerSAM
    settings as in `SamGOptions`; `tiny` (tests only): toy model sizes."""

    reference: str | None = None
    pretrained: bool = True
    sam_weights: str | None = None
    dino: str = "dinov2_vitb14"
    dino_weights: str | None = None
    device: str = "auto"
    dtype: str = "float32"
    attention: str = "concat"  # sam_attention.DEFAULT_ATTENTION (this module imports no torch; a test checks)
    compile: bool = False
    use_dino: bool = True
    extra_points: bool = True
    refine: bool = True
    persam: bool = True
    persam_steps: int = 1000
    batch_size: int = 64
    seed: int = 0
    tiny: bool = False

    def validate(self) -> None:
        if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", self.device):
            raise ConfigError(f"segmenter option device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"segmenter option dtype must be float32 or bfloat16, got {self.dtype!r}")
        from vfmbench.encoders.sam_attention import check_attention_mode

        try:
            check_attention_mode(self.attention)
        except ConfigError as exc:
            raise ConfigError(f"segmenter option attention: {exc} (SAM 1's ViT only)") from None
        if self.batch_size < 1 or self.persam_steps < 1:
            raise ConfigError("segmenter options batch_size and persam_steps must be at least 1")
        given = [k for k in ("sam_weights", "dino_weights") if getattr(self, k)]
        if given and not self.pretrained:
            raise ConfigError(f"segmenter options {' and '.join(given)} name weights files, but pretrained=false "
                              "(--random-weights) asks for random weights: give one or the other")

    def changed(self) -> list[str]:
        """The options set to other values than their defaults."""
        default = SegmenterConfig()
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]


class Segmenter:
    """Frames in, masks out. ``needs_truth``: `segment` needs the ground-truth masks (oracle)."""

    name: str
    needs_truth: bool = False

    def segment(self, frames: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
        """uint8 ``[B, H, W, 3]`` (and for the oracle bool ``[B, H, W]`` truth) -> bool ``[B, H, W]``."""
        raise NotImplementedError


class OracleSegmenter(Segmenter):
    """The ground-truth masks themselves."""

    name = "oracle"
    needs_truth = True

    def segment(self, frames: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
        if truth is None:
            raise ConfigError("the oracle segmenter reads the task's ground-truth masks; none were given")
        if truth.shape != frames.shape[:3]:
            raise ConfigError(f"ground-truth masks {truth.shape} do not match the frames {frames.shape[:3]}")
        return truth.astype(bool)


class SamGSegmenter(Segmenter):
    """SAM-G on a SAM ViT; `model` is the built `SamG`. Frames are segmented in batches of
    ``batch_size`` on the model's device."""

    def __init__(self, name: str, model: Any, batch_size: int):
        self.name, self.model, self.batch_size = name, model, batch_size

    def segment(self, frames: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(frames), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[i:i + self.batch_size]))
            out.append(self.model.segment(chunk).masks.cpu().numpy())
        return np.concatenate(out) if out else np.zeros(frames.shape[:3], bool)


@dataclass(frozen=True)
class SegmenterSpec:
    """A registered segmenter: ``weights`` names the weight set it loads (None: none);
    ``build(config, task)`` makes one (`task`: the task name, for a default reference)."""

    name: str
    description: str
    family: str
    build: Callable[[SegmenterConfig, str | None], Segmenter]
    weights: str | None = None
    paper: str = ""

    def weights_status(self) -> str:
        """'none' (no weights), else the worst status of its weight sets: its SAM's and, for SAM-G,
        the default DINOv2's ('missing' or 'corrupt' if either is)."""
        if self.weights is None:
            return "none"
        import vfmbench.encoders  # noqa: F401  (registers the weight sets)
        from vfmbench.weights import WEIGHTS

        names = [self.weights] + ([SegmenterConfig.dino] if self.family == "samg" else [])
        states = [WEIGHTS.get(n).status() for n in names]
        return next((s for s in ("missing", "corrupt") if s in states), "installed")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "weights": self.weights,
                "weights_status": self.weights_status(), "paper": self.paper, "description": self.description}


SEGMENTERS: Registry[SegmenterSpec] = Registry("segmenter")


def _device(name: str) -> Any:
    """The torch device of the option `device` (validated by `SegmenterConfig.validate`); a CUDA
    device on a machine without one is a ConfigError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"segmenter option device={name}, but this machine has no such CUDA device "
                          f"({torch.cuda.device_count()} found): use device=cpu or auto")
    return device


def load_reference(config: SegmenterConfig, task: str | None) -> Any:
    """The reference `config` names, or the task's ground-truth one (seed 0)."""
    from vfmbench.masking.reference import read_reference, reference_from_task

    if config.reference is not None:
        return read_reference(config.reference)
    if task is None:
        raise ConfigError("SAM-G needs a reference: give reference=REF.json (vfmbench mask reference --task T --out REF.json)")
    return reference_from_task(task)


def _build_samg(name: str, make_sam: Callable[[SegmenterConfig, Any], Any], vit_attention: bool = True
                ) -> Callable[[SegmenterConfig, str | None], Segmenter]:
    """The builder of SAM-G segmenter `name`: `make_sam(config, location)` makes its promptable SAM
    from the weight set of the same name (location None: random weights). ``vit_attention``: the
    model has SAM 1's ViT, whose attention path the option ``attention`` picks (else only its
    default is accepted)."""
    def build(config: SegmenterConfig, task: str | None) -> Segmenter:
        import torch

        import vfmbench.encoders  # noqa: F401  (registers the weight sets)
        from vfmbench.encoders import create_encoder
        from vfmbench.masking.samg import DinoFeatures, SamG, SamGOptions
        from vfmbench.weights import WEIGHTS, locate_weights

        config.validate()
        device = _device(config.device)
        if not vit_attention and config.attention != SegmenterConfig.attention:
            raise ConfigError(f"segmenter option attention={config.attention} picks an attention path of SAM 1's ViT; "
                              f"{name} (Hiera) has no such choice: leave the option out")
        ref = load_reference(config, task)
        location = None
        if config.pretrained:
            location = locate_weights(WEIGHTS.get(name), config.sam_weights,
                                      hint="for random weights (tests only) set the segmenter option pretrained=false: "
                                           "--random-weights on `vfmbench mask`, --set 'mask_options.options="
                                           "{pretrained: false}' on `vfmbench rl train`, or options: {pretrained: false} "
                                           "of a samg wrapper in task_config.wrappers (--mask itself takes none)")
        sam = make_sam(config, location)
        dino = None
        if config.use_dino:
            kwargs: dict[str, Any] = {"weights": config.dino_weights} if config.dino_weights else {}
            if config.tiny:
                kwargs["tiny"] = True
            enc = create_encoder(config.dino, pretrained=config.pretrained, **kwargs)
            # the authors' 448-pixel input: a 32 x 32 patch grid on SAM's 64 x 64 one (tiny: 2 on 4)
            dino = DinoFeatures(enc, grid=sam.grid // 2, out_grid=sam.grid)
        dtype = getattr(torch, config.dtype)
        sam.to(device)
        sam.model.vision_encoder.to(dtype)
        if dino is not None:
            dino.to(device).encoder.to(dtype)
        if config.compile:  # shapes are fixed per batch size: one graph each, no dynamic-shape kernels
            sam.model.vision_encoder.compile(dynamic=False)
            if dino is not None:
                dino.encoder.model.compile(dynamic=False)
        opts = SamGOptions(dino=config.use_dino, extra_points=config.extra_points, refine=config.refine,
                           persam=config.persam, persam_steps=config.persam_steps)
        return SamGSegmenter(name, SamG(sam, dino, ref, opts, seed=config.seed), config.batch_size)

    return build


def _oracle(config: SegmenterConfig) -> OracleSegmenter:
    """The oracle, which reads ground truth: a model's options (weights, compile, ablations, ...) are
    refused rather than ignored; where it runs (device, dtype, batch_size, seed) is free."""
    unused = [k for k in config.changed() if k not in ("device", "dtype", "batch_size", "seed")]
    if unused:
        raise ConfigError(f"the oracle segmenter reads the task's ground-truth masks and takes no model options; "
                          f"got {', '.join(unused)}")
    return OracleSegmenter()


def _sam(arch: str) -> Callable[[SegmenterConfig, Any], Any]:
    def make(config: SegmenterConfig, location: Any) -> Any:
        from vfmbench.masking.sam_model import build_promptable_sam

        return build_promptable_sam(arch, location, seed=config.seed, tiny=config.tiny, attention=config.attention)

    return make


def _sam2(arch: str) -> Callable[[SegmenterConfig, Any], Any]:
    def make(config: SegmenterConfig, location: Any) -> Any:
        from vfmbench.masking.sam2_model import build_promptable_sam2

        return build_promptable_sam2(arch, location, seed=config.seed, tiny=config.tiny)

    return make


SEGMENTERS.register(SegmenterSpec(
    "oracle", "ground-truth masks of the task's mask groups (MuJoCo segmentation): the upper bound", "oracle",
    lambda config, task: _oracle(config), paper="002 (upper bound)"))
for _arch, _size in (("vit_b", "ViT-B"), ("vit_l", "ViT-L"), ("vit_h", "ViT-H")):
    SEGMENTERS.register(SegmenterSpec(
        f"sam_{_arch}", f"SAM-G on Segment Anything {_size} (whole official checkpoint) + DINOv2 ViT-B/14 "
                        "correspondence, 3 decoding rounds, PerSAM weights", "samg",
        _build_samg(f"sam_{_arch}", _sam(_arch)), weights=f"sam_{_arch}", paper="002"))
for _arch, _size in (("hiera_t", "Hiera-T"), ("hiera_s", "Hiera-S"), ("hiera_bp", "Hiera-B+"), ("hiera_l", "Hiera-L")):
    SEGMENTERS.register(SegmenterSpec(
        f"sam2_{_arch}", f"SAM-G on Segment Anything 2.1 {_size} (image mode, official checkpoint) + DINOv2 "
                         "ViT-B/14 correspondence, 3 decoding rounds, PerSAM weights", "samg",
        _build_samg(f"sam2_{_arch}", _sam2(_arch), vit_attention=False), weights=f"sam2_{_arch}",
        paper="002 (SAM 2 in place of SAM)"))


def build_segmenter(name: str, config: SegmenterConfig | dict[str, Any] | None = None,
                    task: str | None = None) -> Segmenter:
    """Segmenter `name` built by `config` (a `SegmenterConfig` or its fields); unknown names and
    options raise `UnknownNameError` / `ConfigError`; missing weights `WeightsError` with the fetch
    command."""
    from vfmbench.utils.config import from_dict

    spec = SEGMENTERS.get(name)
    if not isinstance(config, SegmenterConfig):
        config = from_dict(SegmenterConfig, dict(config or {}), source=f"segmenter {name!r} options")
    return spec.build(config, task)
