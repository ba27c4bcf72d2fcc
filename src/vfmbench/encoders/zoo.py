"""The foundation-model zoo: SAM, DINOv2, CLIP, MAE, MVP, R3M, VIP and ImageNet ResNets.

Registering the entries imports nothing heavy: `transformers` (extra ``vfm``) is imported when a
ViT or SAM encoder is built. ``create_encoder(name, pretrained=..., **options)`` accepts:

- ``pretrained``: load the official weights (from VFMBENCH_HOME, checked against the spec's
  sha256; a missing or corrupt file is a WeightsError saying how to fetch it) or use random
  weights drawn from ``seed`` (labelled ``(random)`` in tables);
- ``weights``: a checkpoint file or hub folder in any format the family reads (instead of the
  file in VFMBENCH_HOME; implies pretrained);
- ``pooling``: how features become the embedding (see docs/encoders.md);
- ``full_frame``: resize the whole frame to the model's input size instead of the official
  resize-then-centre-crop (paper 001's protocol; not for SAM);
- ``seed``: the random initialisation used with ``pretrained=False``;
- ``tiny``: test-only toy sizes of the same architecture family.

Each pretrained entry registers its weight set in `vfmbench.weights.WEIGHTS` under the encoder's
name (so files live in ``$VFMBENCH_HOME/weights/<encoder>/``); `EncoderSpec.weights` is that
registered `WeightsSpec`. Its file name is the upstream release's (``also_named`` lists the other
names the same file goes by, e.g. the name upstream loaders cache it under), so a file downloaded
by hand needs no renaming.

The architecture numbers below (width, depth, heads, patch, registers, projection, position
interpolation) are the official definitions'; tests/test_encoder_zoo.py checks every entry against
them, citing the source file of each number.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Callable

from vfmbench.encoders._registry import EncoderSpec, register_encoder
from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder
from vfmbench.encoders.resnet_pretrained import build_resnet
from vfmbench.encoders.sam import build_sam
from vfmbench.encoders.vit import CLIP_MEAN, CLIP_STD, ViTArch, build_vit
from vfmbench.utils.errors import ConfigError
from vfmbench.weights import WeightsSpec, locate_weights, register_weights

Make = Callable[..., Encoder]  # make(name, weights: WeightsLocation | None, **options) -> Encoder
HUB_FILES = ("config.json", "model.safetensors")


def _weight_set(name: str, source: str, filename: str, sha256: str | None, license: str, format: str,
             size_mb: float | None = None, also_used_by: tuple[str, ...] = (), **fields: Any) -> WeightsSpec:
    """Register encoder `name`'s weight set in WEIGHTS, under the encoder's name."""
    return register_weights(WeightsSpec(name, source, filename, sha256, license, format, size_mb,
                                        used_by=(f"encoder {name}", *also_used_by), **fields))


def _register(name: str, family: str, description: str, embed_dim: int, spec: WeightsSpec, make: Make,
              paper: str = "") -> None:
    hint = f"for random weights ask explicitly: create_encoder({name!r}, pretrained=False)"

    def builder(pretrained: bool, weights: str | os.PathLike[str] | None = None, **options: Any) -> Encoder:
        if weights is not None and not pretrained:
            raise ConfigError(f"{name}: weights={weights!s} was given together with pretrained=False")
        location = locate_weights(spec, weights, hint=hint) if pretrained else None
        return make(name, location, **options)

    register_encoder(EncoderSpec(name, family, description, builder, embed_dim=embed_dim, weights=spec, paper=paper))


# ------------------------------------------------------------------------------------------- SAM

_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
for _size, _file, _sha, _mb in (
    ("b", "sam_vit_b_01ec64.pth", "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", 375.0),
    ("l", "sam_vit_l_0b3195.pth", "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622", 1249.5),
    ("h", "sam_vit_h_4b8939.pth", "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", 2564.6),
):
    _register(
        f"sam_vit_{_size}", "sam",
        f"Segment Anything ViT-{_size.upper()} image encoder; neck output 256x64x64 pooled to 256x6x6",
        256 * 6 * 6,
        _weight_set(f"sam_vit_{_size}", _SAM_URL + _file, _file, _sha, "Apache-2.0", "segment_anything", _mb,
                 also_used_by=(f"segmenter sam_vit_{_size}",), description=f"segment-anything ViT-{_size.upper()} checkpoint: image encoder, prompt encoder, "
                             f"mask decoder"),
        partial(build_sam, arch_name=f"vit_{_size}"),
        paper="000, 002",
    )


# SAM 2.1 (segmenters only, no encoder entry): the whole checkpoint, image encoder + prompt encoder
# + mask decoder + the video-memory modules, which vfmbench.masking.sam2_model does not load. Meta
# publishes no checksums for these files; sizes are approximate (decimal MB).
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
for _name, _file, _size, _mb in (("hiera_t", "sam2.1_hiera_tiny.pt", "Hiera-T", 156.0),
                                 ("hiera_s", "sam2.1_hiera_small.pt", "Hiera-S", 184.0),
                                 ("hiera_bp", "sam2.1_hiera_base_plus.pt", "Hiera-B+", 324.0),
                                 ("hiera_l", "sam2.1_hiera_large.pt", "Hiera-L", 898.0)):
    register_weights(WeightsSpec(f"sam2_{_name}", _SAM2_URL + _file, _file, None, "Apache-2.0", "sam2", _mb,
                                 used_by=(f"segmenter sam2_{_name}",),
                                 description=f"SAM 2.1 {_size} checkpoint ({{'model': ...}}): image encoder, prompt "
                                             "encoder, mask decoder, video memory"))

# ---------------------------------------------------------------------------------------- DINOv2

_DINOV2 = dict(family="dinov2", crop_pct=0.875, interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD,
               pooling="cls")
# dinov2/hub/backbones.py: position embeddings trained at 518; without registers interpolate_offset 0.1 and
# no antialiasing (the defaults of _make_dinov2_model), with registers offset 0 and antialiasing.
_SAMG_SEGMENTERS = ("sam_vit_b", "sam_vit_l", "sam_vit_h", "sam2_hiera_t", "sam2_hiera_s", "sam2_hiera_bp",
                    "sam2_hiera_l")
_PLAIN = dict(pos_image_size=518, interpolate_offset=0.1, interpolate_antialias=False)
_REG4 = dict(pos_image_size=518, num_registers=4, interpolate_offset=0.0, interpolate_antialias=True)
for _name, _hub, _arch, _desc, _official, _paper in (
    ("dinov2_vits14", "facebook/dinov2-small", ViTArch(384, 12, 6, 14, **_PLAIN), "ViT-S/14",
     "dinov2_vits14_pretrain.pth", "002"),
    ("dinov2_vitb14", "facebook/dinov2-base", ViTArch(768, 12, 12, 14, **_PLAIN), "ViT-B/14",
     "dinov2_vitb14_pretrain.pth", "002"),
    ("dinov2_vitb14_reg", "facebook/dinov2-with-registers-base", ViTArch(768, 12, 12, 14, **_REG4),
     "ViT-B/14 with 4 registers", "dinov2_vitb14_reg4_pretrain.pth", "000"),
    ("dinov2_vitl14_reg", "facebook/dinov2-with-registers-large", ViTArch(1024, 24, 16, 14, **_REG4),
     "ViT-L/14 with 4 registers", "dinov2_vitl14_reg4_pretrain.pth", ""),
):
    _register(
        _name, "dinov2", f"DINOv2 {_desc}; CLS token after the final norm", _arch.hidden_size,
        _weight_set(_name, "hf://" + _hub, _hub.split("/")[1], None, "Apache-2.0", "hf_dir", files=HUB_FILES,
                    also_named=(_official,),  # the official release (dl.fbaipublicfiles.com/dinov2/...)
                    # SAM-G's correspondence features (segmenter option dino, this one by default)
                    also_used_by=tuple(f"segmenter {s}" for s in _SAMG_SEGMENTERS) if _name == "dinov2_vitb14" else (),
                    description=f"hub folder; the official {_official} is read too"),
        partial(build_vit, arch=_arch, **_DINOV2),
        paper=_paper,
    )

# ------------------------------------------------------------------------------------------ CLIP

_CLIP_URL = "https://openaipublic.azureedge.net/clip/models/"
_CLIP = dict(family="clip", crop_pct=1.0, interpolation="bicubic", mean=CLIP_MEAN, std=CLIP_STD, pooling="proj")
for _name, _file, _sha, _arch, _mb, _paper in (
    ("clip_vitb16", "ViT-B-16.pt", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
     ViTArch(768, 12, 12, 16, projection_dim=512), 335.0, "000"),
    ("clip_vitb32", "ViT-B-32.pt", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
     ViTArch(768, 12, 12, 32, projection_dim=512), 338.0, ""),
    ("clip_vitl14", "ViT-L-14.pt", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
     ViTArch(1024, 24, 16, 14, projection_dim=768), 890.0, ""),
):
    _register(
        _name, "clip", f"CLIP {_file[:-3]} (OpenAI weights); image embedding after the projection",
        _arch.projection_dim or 0,
        _weight_set(_name, f"{_CLIP_URL}{_sha}/{_file}", _file, _sha, "MIT", "openai_clip", _mb),
        partial(build_vit, arch=_arch, **_CLIP),
        paper=_paper,
    )

# ------------------------------------------------------------------------------------- MAE / MVP

_MAE_URL = "https://dl.fbaipublicfiles.com/mae/pretrain/"
_MVP_URL = "https://berkeley.box.com/shared/static/"
_MAE = dict(family="mae", interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls")
# MVP's files are released as mae_pretrain_<data>_vit_<size>.pth (ir413/mvp README); mvp.load caches them
# as <model name>.pth; the box.com URL ends in a hash; vfmbench once named them mvp_*.pth.
for _name, _source, _file, _also, _arch, _crop, _license, _desc, _mb, _paper in (
    ("mae_vitb16", _MAE_URL + "mae_pretrain_vit_base.pth", "mae_pretrain_vit_base.pth", (),
     ViTArch(768, 12, 12, 16), 0.875, "CC-BY-NC-4.0", "MAE ViT-B/16 (ImageNet)", 343.0, "000"),
    ("mae_vitl16", _MAE_URL + "mae_pretrain_vit_large.pth", "mae_pretrain_vit_large.pth", (),
     ViTArch(1024, 24, 16, 16), 0.875, "CC-BY-NC-4.0", "MAE ViT-L/16 (ImageNet)", 1215.0, ""),
    # mvp/backbones/vit.py, vit_s16: embed_dim 384, depth 12, num_heads 12 (not timm's 6 for ViT-S)
    ("mvp_vits16", _MVP_URL + "m93ynem558jo8vltlads5rcmnahgsyzr.pth", "mae_pretrain_hoi_vit_small.pth",
     ("vits-mae-hoi.pth", "m93ynem558jo8vltlads5rcmnahgsyzr.pth", "mvp_vits_mae_hoi.pth"),
     ViTArch(384, 12, 12, 16), 1.0, "unstated upstream (github.com/ir413/mvp)",
     "MVP ViT-S/16 (MAE on in-the-wild HOI frames)", 87.0, "001"),
    ("mvp_vitb16", _MVP_URL + "0ckepd2ja3pi570z89ogd899cn387yut.pth", "mae_pretrain_egosoup_vit_base.pth",
     ("vitb-mae-egosoup.pth", "0ckepd2ja3pi570z89ogd899cn387yut.pth", "mvp_vitb_mae_egosoup.pth"),
     ViTArch(768, 12, 12, 16), 1.0, "unstated upstream (github.com/ir413/mvp)", "MVP ViT-B/16 (MAE on Ego Soup)",
     343.0, "000"),
):
    _register(
        _name, _name.split("_")[0], f"{_desc}; CLS token after the final norm", _arch.hidden_size,
        _weight_set(_name, _source, _file, None, _license, "mae_timm", _mb, also_named=_also),
        partial(build_vit, arch=_arch, crop_pct=_crop, **_MAE),
        paper=_paper,
    )

# --------------------------------------------------------------------------------------- ResNets

_R3M_URL = "https://pytorch.s3.amazonaws.com/models/rl/r3m/"
# R3M's load_r3m keeps each release as ~/.r3m/r3m_<depth>/model.pt (r3m/__init__.py); the URL names it r3m_<depth>.pt.
for _depth, _dim, _mb, _paper in ((18, 512, 130.0, "001"), (34, 512, 200.0, ""), (50, 2048, 310.0, "000")):
    _register(
        f"r3m_resnet{_depth}", "r3m", f"R3M ResNet-{_depth} (Ego4D); average-pooled layer4, fc = identity", _dim,
        _weight_set(f"r3m_resnet{_depth}", f"{_R3M_URL}r3m_{_depth}.pt", "model.pt", None, "MIT", "r3m", _mb,
                    also_named=(f"r3m_{_depth}.pt",)),
        partial(build_resnet, depth=_depth, style="r3m"),
        paper=_paper,
    )
_register(
    "vip_resnet50", "vip", "VIP ResNet-50 (Ego4D); average-pooled layer4, then Linear(2048, 1024)", 1024,
    _weight_set("vip_resnet50", "https://pytorch.s3.amazonaws.com/models/rl/vip/model.pt", "model.pt", None,
             "CC-BY-NC-4.0", "vip", 98.0),
    partial(build_resnet, depth=50, style="vip", fc_out=1024),
    paper="001",
)
_TV_URL = "https://download.pytorch.org/models/"
for _depth, _file, _sha, _dim, _mb, _paper in (
    (18, "resnet18-f37072fd.pth", "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec", 512, 44.7, "001"),
    (50, "resnet50-0676ba61.pth", "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", 2048, 97.8, ""),
):
    _register(
        f"imagenet_resnet{_depth}", "resnet",
        f"torchvision ResNet-{_depth} (ImageNet-1k V1); average-pooled layer4, classifier dropped", _dim,
        _weight_set(f"imagenet_resnet{_depth}", _TV_URL + _file, _file, _sha, "BSD-3-Clause", "torchvision", _mb),
        partial(build_resnet, depth=_depth, style="imagenet"),
        paper=_paper,
    )
