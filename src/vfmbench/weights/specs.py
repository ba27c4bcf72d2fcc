"""Weight sets: what each official file is, where it comes from, and where it lives on disk.

A `WeightsSpec` describes one file (or one hub folder) of published pretrained weights; the
`WEIGHTS` registry holds every weight set by name. Whoever uses a weight set (an encoder, parts
of a segmenter) registers it, or refers to the registered one, and names itself in ``used_by``.
Files live under ``$VFMBENCH_HOME/weights/<name>/<filename>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfmbench.registry import Registry
from vfmbench.utils.errors import WeightsError
from vfmbench.utils.paths import weights_dir

HF_PREFIX = "hf://"
# Files of a hub folder that hold the weights, in the order the loaders look for them.
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class WeightsSpec:
    """One official weight set.

    name: the weight set's name (its folder under ``$VFMBENCH_HOME/weights``; for encoder weights,
    the encoder's name); source: URL, or ``hf://<hub id>`` for a model-hub repository; filename: its
    name on disk (a folder for ``hf_dir``); sha256: checksum of the file (of ``model.safetensors``
    for a hub folder), None where no published checksum could be confirmed (the file is then
    checked by loading it); license: the weights' licence; format: the checkpoint layout the
    loaders expect ("segment_anything", "sam2", "openai_clip", "mae_timm", "torchvision", "r3m", "vip",
    "hf_dir"); files: for hub folders, the files to fetch; used_by: who loads them, e.g.
    ``("encoder sam_vit_b",)``; description: what the file holds, where worth saying;
    also_named: other names the same weights go by (the name of the upstream release when
    `filename` is not it, the names upstream loaders cache them under, a file in another official
    layout): a file of one of these names in the weight set's folder is used when `filename` is
    absent, so a file downloaded by hand needs no renaming.
    """

    name: str
    source: str
    filename: str
    sha256: str | None
    license: str
    format: str
    size_mb: float | None = None
    files: tuple[str, ...] = ()
    used_by: tuple[str, ...] = ()
    description: str = ""
    also_named: tuple[str, ...] = ()

    @property
    def is_hub(self) -> bool:
        return self.source.startswith(HF_PREFIX)

    @property
    def path(self) -> Path:
        """Where the file (or hub folder) is expected (downloads go there)."""
        return weights_path(self)

    @property
    def installed(self) -> Path | None:
        """The file in place: `path`, else the first of `also_named` present in its folder; None if none is."""
        return installed_path(self)

    @property
    def fetch_command(self) -> str:
        return f"vfmbench weights download {self.name}"

    def checksum(self, path: Path) -> str:
        """The sha256 of the weights at `path`; a WeightsError if it differs from the published one."""
        from vfmbench.weights.checksums import verify_weights

        return verify_weights(self, path)

    def status(self) -> str:
        """'missing'; 'corrupt' (the file is there but does not match the published sha256, or a hub
        folder lacks its weights file); or 'installed' (there, and matching the published sha256
        where one is published). The sha256 is computed once per file and remembered."""
        from vfmbench.weights.checksums import weights_status

        return weights_status(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status(),
            "format": self.format,
            "license": self.license,
            "size_mb": self.size_mb,
            "sha256": self.sha256,
            "used_by": list(self.used_by),
            "source": self.source,
            "path": str(self.installed or self.path),
            "also_named": list(self.also_named),
            "description": self.description,
        }


WEIGHTS: Registry[WeightsSpec] = Registry("weight set", plural="weight sets")
register_weights = WEIGHTS.register
get_weights = WEIGHTS.get
list_weights = WEIGHTS.names


def weights_path(spec: WeightsSpec) -> Path:
    """Where weight set `spec`'s file (or hub folder) is expected (and downloaded to)."""
    return weights_dir() / spec.name / spec.filename


def installed_path(spec: WeightsSpec) -> Path | None:
    """The installed file of `spec`: `weights_path`, else the first name of ``also_named`` present in
    the same folder; None when none is there."""
    folder = weights_dir() / spec.name
    for name in (spec.filename, *spec.also_named):
        if (folder / name).exists():
            return folder / name
    return None


# For users whose file differs from the published one on purpose.
OWN_FILE_HINT = (
    "to use a file of your own (another release, a fine-tuned checkpoint), pass it explicitly instead of "
    "placing it here: the encoder option weights=PATH (create_encoder(name, weights=PATH), "
    "encoder_options: {weights: PATH} in a run config) or --weights PATH (vfmbench embed); "
    "such files are not held to the published checksum"
)


def weights_error(spec: WeightsSpec, path: Path, problem: str, hint: str = "") -> WeightsError:
    """An error about `spec`'s weights at `path` that says where they come from and how to fetch them;
    `hint` is a last line from the caller (e.g. how to ask for random weights instead)."""
    lines = [
        f"pretrained weights for {spec.name!r} {problem}",
        f"  file: {path}",
        f"  source: {spec.source}",
        f"  fetch them with: {spec.fetch_command}",
        "  (or place the file there by hand; set VFMBENCH_HOME to use another folder)",
    ]
    if spec.also_named:
        lines.append(f"  (in that folder it may also be named: {', '.join(spec.also_named)})")
    if hint:
        lines.append(f"  {hint}")
    return WeightsError("\n".join(lines))
