"""The reference of SAM-G (paper 002 §4.1): one frame of the training environment, the masks of
its task-relevant objects and, optionally, extra points on each object (3 per object, as the
paper's human-labelled ones).

On disk a reference is three files beside each other: ``REF.json`` (schema
``vfmbench.samg_reference/1``: task, task config, seed, frame size, the objects with their names
and points ``[x, y]`` in frame pixels, meant to be edited by hand), ``REF.png`` (the frame, RGB) and
``REF.mask.png`` (8-bit labels: 0 background, i + 1 object i). Nothing in them is executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfmbench.utils.errors import ConfigError
from vfmbench.utils.io import write_json_atomic

SCHEMA = "vfmbench.samg_reference/1"
POINTS_PER_OBJECT = 3  # paper 002 §4.1: "We manually label 3 points for each object"


@dataclass
class Reference:
    """``image`` uint8 ``[H, W, 3]``; ``masks`` bool ``[K, H, W]`` (one per object, K >= 1);
    ``names`` K object names; ``points`` float32 ``[K, P, 2]`` (x, y) pixels, P may be 0;
    ``task``/``task_config``/``seed``: where the frame came from (informational)."""

    image: np.ndarray
    masks: np.ndarray
    names: list[str]
    points: np.ndarray
    task: str | None = None
    task_config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        h, w = self.image.shape[:2]
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ConfigError(f"reference image must be uint8 [H, W, 3], got {self.image.dtype} {self.image.shape}")
        if h != w:
            raise ConfigError(f"reference image is {w}x{h}: SAM-G masking takes square frames (tasks render "
                              "resolution x resolution)")
        if self.masks.ndim != 3 or self.masks.shape[1:] != (h, w) or len(self.masks) < 1:
            raise ConfigError(f"reference masks must be [K >= 1, {h}, {w}], got {self.masks.shape}")
        if len(self.names) != len(self.masks):
            raise ConfigError(f"reference has {len(self.masks)} object masks but {len(self.names)} names")
        if self.points.ndim != 3 or self.points.shape[0] != len(self.masks) or self.points.shape[2] != 2:
            raise ConfigError(f"reference points must be [K={len(self.masks)}, P, 2], got {self.points.shape}")
        for name, m in zip(self.names, self.masks):
            if not m.any():
                raise ConfigError(f"reference object {name!r} has an empty mask: pick another seed or frame")
        if self.points.size and ((self.points < 0).any() or (self.points[..., 0] > w - 1).any()
                                 or (self.points[..., 1] > h - 1).any()):
            raise ConfigError(f"reference points must lie inside the {w}x{h} frame, got {self.points.tolist()}")

    @property
    def mask(self) -> np.ndarray:
        """The union of the object masks, bool ``[H, W]``."""
        return self.masks.any(0)


def spread_points(mask: np.ndarray, n: int = POINTS_PER_OBJECT) -> np.ndarray:
    """`n` points inside `mask` ``[H, W]``, spread out: the pixel deepest inside the mask (largest
    distance to its border), then farthest-point sampling among the mask's interior pixels.
    Returns float32 ``[n, 2]`` (x, y). Deterministic."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ConfigError("cannot place points on an empty mask")
    depth = _inner_distance(mask)[ys, xs]
    inner = depth >= max(1, depth.max() // 2)  # keep away from the border where possible
    cand = np.stack([xs[inner], ys[inner]], 1).astype(np.float32)
    chosen = [int(np.argmax(depth[inner]))]
    dist = np.linalg.norm(cand - cand[chosen[0]], axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(cand - cand[nxt], axis=1))
    return cand[chosen]


def _inner_distance(mask: np.ndarray) -> np.ndarray:
    """City-block distance of each mask pixel to the nearest background pixel (two passes)."""
    h, w = mask.shape
    big = h + w
    d = np.where(mask, big, 0).astype(np.int64)
    for y in range(h):
        for x in range(w):
            if d[y, x]:
                d[y, x] = min(d[y, x], (d[y - 1, x] + 1) if y else 1, (d[y, x - 1] + 1) if x else 1)
    for y in range(h - 1, -1, -1):
        for x in range(w - 1, -1, -1):
            if d[y, x]:
                d[y, x] = min(d[y, x], (d[y + 1, x] + 1) if y < h - 1 else 1, (d[y, x + 1] + 1) if x < w - 1 else 1)
    return d


def reference_from_task(task: str, task_config: dict[str, Any] | None = None, *, seed: int = 0,
                        groups: list[str] | None = None, points: int = POINTS_PER_OBJECT) -> Reference:
    """The reference of `task`: its first frame at `seed` (clean, no shift, no wrappers) and the
    ground-truth masks of `groups` (default: the task's default mask groups, one object each),
    with `points` extra points per object placed by `spread_points`."""
    from vfmbench.tasks import make_task

    cfg = {**(task_config or {}), "shift": "none", "shift_options": {}, "wrappers": []}
    with make_task(task, cfg) as env:
        image = env.reset(seed)["pixels"]
        names = list(groups) if groups else list(env.mask_groups)
        masks = np.stack([env.mask([g]) for g in names])
    keep = [i for i, m in enumerate(masks) if m.any()]
    if not keep:
        raise ConfigError(f"{task} at seed {seed}: no task-relevant part is visible; pick another --seed")
    names, masks = [names[i] for i in keep], masks[keep]
    pts = np.stack([spread_points(m, points) for m in masks]) if points else np.zeros((len(masks), 0, 2), np.float32)
    return Reference(image=np.ascontiguousarray(image[..., :3]), masks=masks, names=names, points=pts, task=task,
                     task_config={k: v for k, v in cfg.items() if k not in ("wrappers",)}, seed=seed)


def reference_from_pngs(image_png: str | Path, mask_png: str | Path, points: int = POINTS_PER_OBJECT) -> Reference:
    """A reference from a user's PNG pair: the frame (RGB) and its mask (8-bit: 0 background; one
    object per distinct non-zero value, ordered by value)."""
    from PIL import Image

    image = np.asarray(Image.open(image_png).convert("RGB"))
    labels = np.asarray(Image.open(mask_png).convert("L"))
    if labels.shape != image.shape[:2]:
        raise ConfigError(f"{mask_png} is {labels.shape[1]}x{labels.shape[0]} but {image_png} is "
                          f"{image.shape[1]}x{image.shape[0]}: the mask must match the frame")
    values = [int(v) for v in np.unique(labels) if v]
    if not values:
        raise ConfigError(f"{mask_png} has no non-zero pixel: mark the task-relevant objects")
    masks = np.stack([labels == v for v in values])
    pts = np.stack([spread_points(m, points) for m in masks]) if points else np.zeros((len(masks), 0, 2), np.float32)
    return Reference(image=image, masks=masks, names=[f"object{v}" for v in values], points=pts)


def _paths(path: str | Path) -> tuple[Path, Path, Path]:
    p = Path(path)
    if p.suffix != ".json":
        raise ConfigError(f"a reference is named by its .json file, got {path}")
    return p, p.with_suffix(".png"), p.with_suffix(".mask.png")


def write_reference(ref: Reference, path: str | Path) -> Path:
    """Write `ref` as ``REF.json``, ``REF.png`` and ``REF.mask.png``; returns the .json path."""
    from PIL import Image

    if len(ref.masks) > 255:
        raise ConfigError("a reference holds at most 255 objects")
    js, img, msk = _paths(path)
    js.parent.mkdir(parents=True, exist_ok=True)
    labels = np.zeros(ref.image.shape[:2], np.uint8)
    for i, m in enumerate(ref.masks):
        labels[m & (labels == 0)] = i + 1
    Image.fromarray(ref.image).save(img)
    Image.fromarray(labels).save(msk)
    write_json_atomic(js, {
        "schema": SCHEMA, "task": ref.task, "task_config": ref.task_config, "seed": ref.seed,
        "size": list(ref.image.shape[:2]), "image": img.name, "mask": msk.name,
        "objects": [{"name": n, "label": i + 1, "points": [[round(float(x), 2), round(float(y), 2)] for x, y in p]}
                    for i, (n, p) in enumerate(zip(ref.names, ref.points))],
    })
    return js


def read_reference(path: str | Path) -> Reference:
    """Read a reference written by `write_reference` (and perhaps edited by hand). Errors name the
    file and the key."""
    from PIL import Image

    js, _, _ = _paths(path)
    try:
        doc = json.loads(js.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{js}: no such reference; make one with vfmbench mask reference --task T --out {js}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{js}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ConfigError(f"{js}: schema must be {SCHEMA!r}, got {doc.get('schema') if isinstance(doc, dict) else doc!r}")
    try:
        objects = doc["objects"]
        image = np.asarray(Image.open(js.parent / doc["image"]).convert("RGB"))
        labels = np.asarray(Image.open(js.parent / doc["mask"]))
        names = [str(o["name"]) for o in objects]
        masks = np.stack([labels == int(o["label"]) for o in objects]) if objects else np.zeros((0, *labels.shape), bool)
        counts = {len(o.get("points", [])) for o in objects}
    except KeyError as exc:
        raise ConfigError(f"{js}: missing key {exc}") from None
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(f"{js}: cannot read {exc.filename or exc}: keep the .png files beside the .json") from None
    if len(counts) > 1:
        raise ConfigError(f"{js}: objects.*.points: every object needs the same number of points, got {sorted(counts)}")
    try:
        pts = np.asarray([o.get("points", []) for o in objects], np.float32).reshape(len(objects), -1, 2)
    except ValueError:
        raise ConfigError(f"{js}: objects.*.points must be lists of [x, y] pairs") from None
    try:
        return Reference(image=image, masks=masks, names=names, points=pts, task=doc.get("task"),
                         task_config=doc.get("task_config") or {}, seed=doc.get("seed"))
    except ConfigError as exc:
        raise ConfigError(f"{js}: {exc}") from None
