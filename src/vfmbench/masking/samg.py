"""SAM-G (paper 002 §4, Appendix A): segment the task-relevant objects of any frame from one
reference frame and its mask, by feature correspondence and prompted SAM.

Identify (§4.1), once per reference, on each feature model (SAM's image embedding, or SAM 2's
with ``no_mem_embed``, and DINOv2's patch tokens, both on SAM's 64 x 64 grid):

- *type 1* point feature of a mask m: ``(mean_{m} f + max_{m} f) / 2`` over the grid cells of m
  (the mask resized bilinearly to the grid, cells > 0), L2-normalised; one for the union of the
  objects, and one per object when there are several (the authors' ``extra_masked_images``);
- *type 2* point features: f bilinearly sampled at each extra point, L2-normalised.

Segment (§4.2), for every frame, batched over frames:

1. similarity map of each point feature: cosine similarity with every grid cell, upsampled x4
   (bilinear) and by SAM's mask post-processing to the frame; SAM's and DINOv2's maps averaged;
2. prompts: each map's highest point is a positive prompt; the union's type-1 map also gives its
   lowest point as a negative prompt (the authors' code: only that map gives a negative);
3. round 1: SAM decodes the points into three masks; PerSAM's weights mix their logits
   (``M = w1 M1 + w2 M2 + (1 - w1 - w2) M3``), the mask is ``M > 0``;
4. rounds 2 and 3: the bounding box of the last mask, the least-similar point of the union's
   type-1 map inside that box as one more negative prompt, and the last round's low-resolution
   logits as SAM's mask input; the final mask is round 3's highest-scoring one (SAM's IoU head).

Ablations (paper Table 4): ``dino=False`` (SAM features only), ``extra_points=False`` (no type 2),
``refine=False`` (round 1's mixed mask is final), ``persam=False`` (no fitted weights: round 1
takes SAM's highest-scoring mask).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vfmbench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, apply_preprocessing
from vfmbench.masking.persam import fit_mixing_weights, mix
from vfmbench.masking.reference import Reference
from vfmbench.masking.sam2_model import PromptableSam2, Sam2Embeddings
from vfmbench.masking.sam_model import Decoded, PromptableSam
from vfmbench.utils.errors import ConfigError

Promptable = PromptableSam | PromptableSam2
Embeddings = torch.Tensor | Sam2Embeddings  # what the model's ``embed`` returns and its ``decode`` takes

PERSAM_NOISE = 0.01  # the authors' noise on type-2 point features while fitting the PerSAM weights


@dataclass(frozen=True)
class SamGOptions:
    """Switches of the method (all on: the paper's SAM-G) and the PerSAM fit."""

    dino: bool = True
    extra_points: bool = True
    refine: bool = True
    persam: bool = True
    persam_steps: int = 1000  # the authors' 1000 AdamW steps
    persam_samples: int = 8  # decodings of the reference with noisy type-2 features, fitted together

    def validate(self) -> None:
        if self.persam_steps < 1 or self.persam_samples < 1:
            raise ConfigError(f"persam_steps and persam_samples must be at least 1, got {self.persam_steps} "
                              f"and {self.persam_samples}")


@dataclass
class PointFeatures:
    """Unit point features of one model: ``type1`` ``[M1, C]`` (row 0: the union of the objects,
    then one per object when K > 1) and ``type2`` ``[M2, C]`` (one per extra point; M2 may be 0)."""

    type1: torch.Tensor
    type2: torch.Tensor


@dataclass
class Prompts:
    """Point prompts ``[B, N, 2]`` (x, y frame pixels) with labels ``[B, N]`` (1 / 0), an optional
    box ``[B, 4]`` (x0, y0, x1, y1)."""

    points: torch.Tensor
    labels: torch.Tensor
    box: torch.Tensor | None = None


@dataclass
class Segmentation:
    """SAM-G's output for a batch: ``masks`` bool ``[B, H, W]``; with ``trace``: the averaged
    similarity maps ``sim1`` ``[B, M1, H, W]`` / ``sim2`` ``[B, M2, H, W]``, the prompts and masks of
    every round."""

    masks: torch.Tensor
    sim1: torch.Tensor | None = None
    sim2: torch.Tensor | None = None
    rounds: list[Prompts] = field(default_factory=list)
    round_masks: list[torch.Tensor] = field(default_factory=list)


def feature_map(emb: Embeddings) -> torch.Tensor:
    """The SAM features the correspondence reads, ``[B, C, g, g]``: SAM's image embedding, SAM 2's
    image embedding (its coarsest neck level with ``no_mem_embed``, what the official predictor's
    ``get_image_embedding`` returns)."""
    return emb.image if isinstance(emb, Sam2Embeddings) else emb


def expand_embeddings(emb: Embeddings, n: int) -> Embeddings:
    """Embeddings of one image repeated `n` times (views)."""
    return emb.expand(n) if isinstance(emb, Sam2Embeddings) else emb.expand(n, -1, -1, -1)


def grid_mask(mask: torch.Tensor, grid: int) -> torch.Tensor:
    """bool ``[..., H, W]`` -> bool ``[..., g, g]``: bilinear resize, cells > 0 (the authors' rule);
    an object too small for any cell keeps the cells its area touches."""
    x = mask.float().reshape(-1, 1, *mask.shape[-2:])
    out = F.interpolate(x, (grid, grid), mode="bilinear", align_corners=False) > 0
    area = F.interpolate(x, (grid, grid), mode="area") > 0
    empty = ~out.flatten(1).any(1)
    out[empty] = area[empty]
    return out.reshape(*mask.shape[:-2], grid, grid)


def type1_features(feat: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(mean + max) / 2`` of ``feat`` ``[C, g, g]`` over each grid mask ``[M, g, g]`` -> unit ``[M, C]``."""
    out = []
    for m in masks:
        cells = feat[:, m]  # [C, n]
        out.append((cells.mean(1) + cells.amax(1)) / 2)
    return F.normalize(torch.stack(out), dim=-1)


def type2_features(feat: torch.Tensor, points: torch.Tensor, frame: int) -> torch.Tensor:
    """``feat`` ``[C, g, g]`` sampled bilinearly at ``points`` ``[P, 2]`` (x, y pixels of a `frame`-sized
    square frame; pixel centres) -> unit ``[P, C]``."""
    if not len(points):
        return feat.new_zeros(0, feat.shape[0])
    xy = (points.float() + 0.5) / frame * 2 - 1
    s = F.grid_sample(feat[None], xy[None, None], mode="bilinear", align_corners=False)  # [1, C, 1, P]
    return F.normalize(s[0, :, 0].T, dim=-1)


def point_features(feat: torch.Tensor, ref: Reference, use_points: bool) -> PointFeatures:
    """Both types of point features of `ref` on one model's reference grid ``feat`` ``[C, g, g]``."""
    masks = torch.as_tensor(ref.masks, device=feat.device)
    regions = torch.cat([masks.any(0, keepdim=True), masks]) if len(masks) > 1 else masks
    t1 = type1_features(feat, grid_mask(regions, feat.shape[-1]))
    pts = torch.as_tensor(ref.points, device=feat.device).reshape(-1, 2)
    t2 = type2_features(feat, pts, ref.image.shape[0]) if use_points else feat.new_zeros(0, feat.shape[0])
    return PointFeatures(t1, t2)


def similarity(pf: torch.Tensor, feats: Embeddings, sam: Promptable, frame_hw: tuple[int, int]) -> torch.Tensor:
    """Cosine similarity of unit point features ``[M, C]`` with ``feats`` ``[B, C, g, g]`` (or a
    model's embeddings: their `feature_map`), upsampled x4 and post-processed to the frame as SAM's
    masks are -> ``[B, M, H, W]``."""
    feats = feature_map(feats)
    if not len(pf):
        return feats.new_zeros(feats.shape[0], 0, *frame_hw)
    sim = torch.einsum("mc,bchw->bmhw", pf.to(feats.dtype), F.normalize(feats, dim=1))
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear", align_corners=False)
    return sam.postprocess(sim, frame_hw)


def extreme_points(maps: torch.Tensor, lowest: bool = False) -> torch.Tensor:
    """The highest (or lowest) point of each map ``[B, M, H, W]`` -> ``[B, M, 2]`` (x, y; first in
    row-major order on ties)."""
    b, m, h, w = maps.shape
    flat = maps.reshape(b, m, h * w)
    idx = (flat.argmin(-1) if lowest else flat.argmax(-1))
    return torch.stack([idx % w, idx // w], -1)


def lowest_in_box(maps: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """The lowest point of each map ``[B, H, W]`` inside its box ``[B, 4]`` (inclusive) -> ``[B, 2]``."""
    b, h, w = maps.shape
    ys = torch.arange(h, device=maps.device).view(1, h, 1)
    xs = torch.arange(w, device=maps.device).view(1, 1, w)
    x0, y0, x1, y1 = (box[:, i].view(b, 1, 1) for i in range(4))
    inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    masked = torch.where(inside, maps, torch.full_like(maps, float("inf")))
    return extreme_points(masked[:, None], lowest=True)[:, 0]


def bounding_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes ``[B, 4]`` (x0, y0, x1, y1, inclusive pixels) of bool masks ``[B, H, W]``; an empty mask
    gives the whole frame (the authors' fallback)."""
    b, h, w = masks.shape
    rows, cols = masks.any(2), masks.any(1)
    y0 = rows.float().argmax(1)
    y1 = h - 1 - rows.flip(1).float().argmax(1)
    x0 = cols.float().argmax(1)
    x1 = w - 1 - cols.flip(1).float().argmax(1)
    box = torch.stack([x0, y0, x1, y1], 1)
    full = torch.tensor([0, 0, w - 1, h - 1], device=masks.device).expand(b, 4)
    return torch.where(rows.any(1, keepdim=True), box, full)


class DinoFeatures(torch.nn.Module):
    """DINOv2 patch tokens on SAM's grid: the frame resized (shorter side) to ``grid x patch`` pixels
    (bilinear; 448 for a 32 x 32 grid, as the authors' ``T.Resize(448)``), ImageNet mean/std, the
    final-norm patch tokens ``[B, C, grid, grid]`` upsampled bilinearly to ``out_grid``."""

    def __init__(self, encoder: torch.nn.Module, grid: int, out_grid: int):
        super().__init__()
        self.encoder, self.grid, self.out_grid = encoder, grid, out_grid
        self.preprocessing = Preprocessing(resize=grid * encoder.arch.patch_size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                           interpolation="bilinear")

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = apply_preprocessing(frames, self.preprocessing)
        patches = self.encoder.tokens(x.to(next(self.encoder.parameters()).dtype)).patches.float()
        b, n, c = patches.shape
        g = self.grid
        tokens = patches.transpose(1, 2).reshape(b, c, g, g)
        return F.interpolate(tokens, (self.out_grid, self.out_grid), mode="bilinear", align_corners=False)


class SamG(torch.nn.Module):
    """SAM-G on a `PromptableSam` or `PromptableSam2` (and DINOv2 features unless ``options.dino`` is off) for the
    objects of `reference`. Building it computes the point features and fits the PerSAM weights on
    the reference (one frame). `segment` takes uint8 frames ``[B, H, W, 3]`` (square, any size)."""

    def __init__(self, sam: Promptable, dino: DinoFeatures | None, reference: Reference, options: SamGOptions,
                 seed: int = 0):
        super().__init__()
        options.validate()
        if options.dino and dino is None:
            raise ConfigError("SAM-G with DINOv2 features needs a DINOv2 model (or options dino=False)")
        self.sam, self.dino, self.ref, self.options = sam, dino if options.dino else None, reference, options
        device = sam.device
        image = torch.from_numpy(reference.image.copy()).to(device)[None]
        sam_emb, dino_feat = self.features(image)
        self.pf_sam = point_features(feature_map(sam_emb)[0], reference, options.extra_points)
        self.pf_dino = point_features(dino_feat[0], reference, options.extra_points) if dino_feat is not None else None
        self.weights = torch.tensor([1 / 3, 1 / 3, 1 / 3], device=device)
        if options.persam:
            self.weights = self._fit_persam(sam_emb, dino_feat, seed)

    # ----------------------------------------------------------------------------------- stages
    def features(self, frames: torch.Tensor) -> tuple[Embeddings, torch.Tensor | None]:
        """SAM's embeddings of the frames (image embeddings ``[B, 256, g, g]``; SAM 2's with its
        high-resolution features) and DINOv2 features on the same grid (or None)."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] != frames.shape[2]:
            raise ConfigError(f"SAM-G takes square uint8 frames [B, H, H, 3], got {tuple(frames.shape)}")
        emb = self.sam.embed(frames)
        return emb, (self.dino(frames) if self.dino is not None else None)

    def similarity_maps(self, sam_emb: Embeddings, dino_feat: torch.Tensor | None, frame_hw: tuple[int, int],
                        pf_sam: PointFeatures | None = None,
                        pf_dino: PointFeatures | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Averaged similarity maps of the type-1 and type-2 point features: ``[B, M1, H, W]``, ``[B, M2, H, W]``."""
        ps, pd = pf_sam or self.pf_sam, pf_dino or self.pf_dino
        s1, s2 = similarity(ps.type1, sam_emb, self.sam, frame_hw), similarity(ps.type2, sam_emb, self.sam, frame_hw)
        if dino_feat is not None and pd is not None:
            s1 = (s1 + similarity(pd.type1, dino_feat, self.sam, frame_hw)) / 2
            s2 = (s2 + similarity(pd.type2, dino_feat, self.sam, frame_hw)) / 2
        return s1, s2

    @staticmethod
    def first_prompts(sim1: torch.Tensor, sim2: torch.Tensor) -> Prompts:
        """Round-1 prompts: the union's type-1 highest (positive) and lowest (negative) points, then
        the highest point of every other type-1 and every type-2 map (positive)."""
        b = sim1.shape[0]
        pos_first = extreme_points(sim1[:, :1])
        neg = extreme_points(sim1[:, :1], lowest=True)
        rest = extreme_points(torch.cat([sim1[:, 1:], sim2], 1))
        points = torch.cat([pos_first, neg, rest], 1)
        labels = torch.ones(b, points.shape[1], dtype=torch.long, device=sim1.device)
        labels[:, 1] = 0
        return Prompts(points, labels)

    def decode_rounds(self, sam_emb: Embeddings, sim1: torch.Tensor, sim2: torch.Tensor,
                      frame_hw: tuple[int, int], trace: bool = False) -> Segmentation:
        """Rounds 1-3 (or round 1 alone without refinement) on a batch."""
        prompts = self.first_prompts(sim1, sim2)
        out = self.sam.decode(sam_emb, frame_hw, prompts.points, prompts.labels)
        if self.options.persam:
            low, logits = mix(out.low_res, self.weights), mix(out.logits, self.weights)
        else:
            best = out.scores.argmax(1)
            low, logits = _pick(out.low_res, best), _pick(out.logits, best)
        mask = logits > 0
        seg = Segmentation(mask, rounds=[prompts] if trace else [], round_masks=[mask] if trace else [])
        if not self.options.refine:
            return seg
        for _ in range(2):
            box = bounding_boxes(mask)
            neg = lowest_in_box(sim1[:, 0], box)
            prompts = Prompts(torch.cat([prompts.points, neg[:, None]], 1),
                              torch.cat([prompts.labels, torch.zeros_like(prompts.labels[:, :1])], 1), box)
            out = self.sam.decode(sam_emb, frame_hw, prompts.points, prompts.labels, boxes=box, mask_input=low)
            best = out.scores.argmax(1)
            low, mask = _pick(out.low_res, best), _pick(out.logits, best) > 0
            if trace:
                seg.rounds.append(prompts)
                seg.round_masks.append(mask)
        seg.masks = mask
        return seg

    @torch.no_grad()
    def segment(self, frames: torch.Tensor, trace: bool = False) -> Segmentation:
        """Masks of the task-relevant objects in uint8 frames ``[B, H, W, 3]`` (on any device; moved to
        the model's). Everything runs batched over B."""
        frames = frames.to(self.sam.device)
        hw = (frames.shape[1], frames.shape[2])
        sam_emb, dino_feat = self.features(frames)
        sim1, sim2 = self.similarity_maps(sam_emb, dino_feat, hw)
        seg = self.decode_rounds(sam_emb, sim1, sim2, hw, trace)
        if trace:
            seg.sim1, seg.sim2 = sim1, sim2
        return seg

    # ----------------------------------------------------------------------------------- PerSAM
    def _fit_persam(self, sam_emb: Embeddings, dino_feat: torch.Tensor | None, seed: int) -> torch.Tensor:
        """PerSAM on the reference: round-1 decodings of the reference frame, with the type-2
        features perturbed (unit noise x 0.01, as the authors') in all but the first sample, mixed
        and fitted against the reference mask."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        hw = tuple(self.ref.image.shape[:2])
        n = self.options.persam_samples
        sims1, sims2 = [], []
        for i in range(n):
            ps, pd = self._noisy(self.pf_sam, gen, i), (self._noisy(self.pf_dino, gen, i) if self.pf_dino else None)
            s1, s2 = self.similarity_maps(sam_emb, dino_feat, hw, ps, pd)  # type: ignore[arg-type]
            sims1.append(s1)
            sims2.append(s2)
        prompts = self.first_prompts(torch.cat(sims1), torch.cat(sims2))
        out: Decoded = self.sam.decode(expand_embeddings(sam_emb, n), hw, prompts.points, prompts.labels)
        target = torch.as_tensor(self.ref.mask, device=out.logits.device)
        return fit_mixing_weights(out.logits, target, steps=self.options.persam_steps)

    @staticmethod
    def _noisy(pf: PointFeatures, gen: torch.Generator, i: int) -> PointFeatures:
        if i == 0 or not len(pf.type2):
            return pf
        noise = F.normalize(torch.randn(pf.type2.shape, generator=gen), dim=-1).to(pf.type2.device)
        return PointFeatures(pf.type1, F.normalize(pf.type2 + PERSAM_NOISE * noise, dim=-1))


def _pick(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[b, idx[b]]`` for ``x`` ``[B, K, ...]``."""
    return x[torch.arange(x.shape[0], device=x.device), idx]
