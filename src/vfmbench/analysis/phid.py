"""PHID0: persistent-homology intrinsic dimension of embedding trajectories, clean against shifted
(paper 000 §7.2, Table 4).

The 0-dimensional persistent homology (PH0) of a finite point cloud under the Vietoris-Rips (or
Čech) filtration has one finite bar per edge of its Euclidean minimum spanning tree (MST): every
component is born at radius 0 and dies when an MST edge joins it to another. The
alpha-weighted total lifespan of the bars of ``n`` points drawn from a set of dimension ``d`` grows as

    E_alpha(n) = sum_{e in MST(n points)} |e|^alpha  ~  n^((d - alpha) / d)        (0 < alpha < d)

(Steele 1988; Schweinhart 2020, "Fractal dimension and the persistent homology of random
geometric complexes"), so fitting the slope ``m`` of ``log E_alpha`` against ``log n`` over
subsample sizes gives

    PHID0 = alpha / (1 - m)

(Jaquette & Schweinhart 2020; Birdal et al. 2021, "Intrinsic dimension, persistent homology and
generalization in neural networks"; Tulchinskii et al. 2023, "Intrinsic dimension estimation for
robust detection of AI-generated texts", whose estimator paper 000 follows).

Paper 000's score: ``z1``, ``z2`` are the PHID0 of the same expert trajectory (same seed) embedded
clean and under the shift; per trajectory ``Delta_i = |z1 - z2| / d`` with ``d`` the embedding
size, and over the trajectories ``PHID0* = mean(Delta) / (s / sqrt(d))`` with ``s`` the sample
standard deviation of the ``Delta_i``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfmbench.analysis.records import json_number, json_safe, md_cell
from vfmbench.utils.errors import ConfigError, DatasetError

SCHEMA = "vfmbench.analysis.phid/1"
FIGURE = "phid.png"


# -- the estimator ------------------------------------------------------------------------------
def mst_edge_lengths(points: np.ndarray) -> np.ndarray:
    """Lengths of the Euclidean minimum spanning tree's edges of ``points [n, D]``: the death
    radii of PH0's finite bars (``[n - 1]``, float64, the points' units). Coincident points give
    edges of length 0. (scipy's graphs read a zero, or tiny, weight as no edge, so every distance is
    offset by the largest one while the tree is found: every spanning tree has n - 1 edges, so the
    offset does not change which tree is minimal.)"""
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import pdist, squareform

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) < 2:
        raise ConfigError(f"PH0 needs a point cloud [n >= 2, D], got shape {list(points.shape)}")
    dist = squareform(pdist(points))
    offset = float(dist.max())
    if offset == 0:
        return np.zeros(len(points) - 1)
    tree = minimum_spanning_tree(np.where(np.eye(len(points), dtype=bool), 0.0, dist + offset)).tocoo()
    return dist[tree.row, tree.col]


def distinct_points(points: np.ndarray, rtol: float = 1e-6) -> np.ndarray:
    """The rows of ``points [n, D]`` that are distinct: a point within ``rtol`` times the cloud's
    diameter of an earlier kept point is dropped (a frame where nothing moved, or moved by float
    noise only). Repeated points add zero-length PH0 bars whose number grows with the subsample,
    not with the shape, which bends the log-log fit; PHID0 is the dimension of the set visited,
    so it is estimated on the distinct points. Order is kept."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return points
    from scipy.spatial.distance import pdist, squareform

    dist = squareform(pdist(points))
    tol = rtol * float(dist.max())
    keep: list[int] = []
    for i in range(len(points)):
        if not keep or float(dist[i, keep].min()) > tol:
            keep.append(i)
    return points[keep]


def alpha_weighted_lifespan(points: np.ndarray, alpha: float = 1.0) -> float:
    """``E_alpha = sum_i |I_i|^alpha`` over the finite PH0 bars of ``points [n, D]`` (the sum paper
    000 §7.2 writes as PHID0's building block)."""
    return float(np.sum(mst_edge_lengths(points) ** alpha))


@dataclass(frozen=True)
class PhidEstimator:
    """Settings of the PHID0 estimator: subsample sizes from `min_points` up to all points (or
    `max_points`) in `sizes` evenly spaced steps, `reruns` random subsamples per size (their
    median ``E_alpha`` is fitted), weight exponent `alpha` (Tulchinskii et al. 2023 use 1)."""

    alpha: float = 1.0
    min_points: int = 10
    max_points: int | None = None
    sizes: int = 9
    reruns: int = 7

    def validate(self) -> None:
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be positive, got {self.alpha}")
        if self.min_points < 3:
            raise ConfigError(f"min_points must be at least 3, got {self.min_points}")
        if self.max_points is not None and self.max_points <= self.min_points:
            raise ConfigError(f"max_points ({self.max_points}) must exceed min_points ({self.min_points})")
        if self.sizes < 2:
            raise ConfigError(f"sizes must be at least 2 (a slope needs two sizes), got {self.sizes}")
        if self.reruns < 1:
            raise ConfigError(f"reruns must be at least 1, got {self.reruns}")

    def subsample_sizes(self, n: int) -> np.ndarray:
        """The subsample sizes used for a cloud of `n` points (distinct integers, ascending)."""
        top = n if self.max_points is None else min(n, self.max_points)
        if top <= self.min_points:
            raise ConfigError(f"PHID0 needs more than min_points={self.min_points} points, got {top}; "
                              f"lower --min-points or use longer trajectories")
        return np.unique(np.linspace(self.min_points, top, self.sizes).round().astype(int))

    def estimate(self, points: np.ndarray, seed: int = 0) -> float:
        """PHID0 of ``points [n, D]``: ``alpha / (1 - m)`` with ``m`` the least-squares slope of
        ``log E_alpha`` against ``log n`` (dimensionless), over the cloud's distinct points
        (`distinct_points`: repeated frames removed). Deterministic for a given `seed`.

        Raises ConfigError when ``n`` itself is too small for the settings (too short
        trajectories). Returns nan when fewer than ``min_points + 1`` points are distinct (a
        trajectory that barely moves: PHID0 is undefined) and ``inf`` when ``m >= 1`` (no growth
        model fits); callers exclude such non-finite estimates (`pair_deltas`)."""
        self.validate()
        points = np.asarray(points, dtype=np.float64)
        self.subsample_sizes(len(points))  # too short for the settings: a clear error
        points = distinct_points(points)
        if len(points) <= self.min_points:
            return math.nan
        sizes = self.subsample_sizes(len(points))
        rng = np.random.default_rng(seed)
        energies = []
        for n in sizes:
            runs = [alpha_weighted_lifespan(points[rng.choice(len(points), n, replace=False)], self.alpha)
                    for _ in range(self.reruns if n < len(points) else 1)]
            energies.append(np.median(runs))
        energies = np.asarray(energies)  # > 0: distinct points have MST edges of positive length
        m = np.polyfit(np.log(sizes), np.log(energies), 1)[0]
        return float(self.alpha / (1.0 - m)) if m < 1 else math.inf


def pair_deltas(z_clean: Any, z_shift: Any, dim: int, identical: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(Delta [N], usable [N] bool)``: ``Delta_i = |z1_i - z2_i| / dim``; 0 when
    ``identical[i]`` says the two trajectories' embeddings are the same (no change, even when
    their PHID0 is ``inf`` or nan); nan when either estimate is non-finite otherwise (two ``inf``
    from different embeddings are two failed fits, not an equality); ``usable`` marks the finite
    ``Delta_i``."""
    z1, z2 = np.asarray(z_clean, np.float64), np.asarray(z_shift, np.float64)
    same = (z1 == z2) & np.isfinite(z1)
    if identical is not None:
        same = same | np.asarray(identical, bool)
    with np.errstate(invalid="ignore"):
        delta = np.where(same, 0.0, np.abs(z1 - z2) / dim)
    delta = np.where(same | (np.isfinite(z1) & np.isfinite(z2)), delta, math.nan)
    return delta, np.isfinite(delta)


def standardised_score(z_clean: np.ndarray, z_shift: np.ndarray, dim: int,
                       identical: Any = None) -> tuple[float, float, float]:
    """Paper 000's ``(mean Delta, s, PHID0*)`` from per-trajectory PHID0 pairs ``[N]`` of an
    encoder with `dim`-wide embeddings: ``Delta_i = |z1_i - z2_i| / dim`` (`pair_deltas`: 0 for
    equal estimates), ``s`` the sample standard deviation of ``Delta`` (ddof 1),
    ``PHID0* = mean(Delta) / (s / sqrt(dim))``. With ``s = 0`` the score is 0 when every Delta
    is 0 (no change) and ``inf`` otherwise. Pairs with a non-finite Delta are left out (callers
    record them); ConfigError when fewer than 2 pairs are usable."""
    delta, usable = pair_deltas(z_clean, z_shift, dim, identical)
    if int(usable.sum()) < 2:
        raise ConfigError(f"the standardised score needs at least 2 trajectories with finite PHID0, got "
                          f"{int(usable.sum())} of {len(delta)}")
    delta = delta[usable]
    mean, s = float(delta.mean()), float(delta.std(ddof=1))
    if s == 0:
        return mean, s, 0.0 if mean == 0 else math.inf
    return mean, s, mean / (s / math.sqrt(dim))


# -- the record -----------------------------------------------------------------------------------
@dataclass
class PhidResult:
    """One encoder's PHID0 over the trajectories: per-trajectory estimates (clean, shifted), the
    mean and sample std of ``Delta_i = |z1 - z2| / embed_dim`` and the standardised score."""

    encoder: str  # label; pretrained-model entries with random weights end in "(random)"
    embed_dim: int
    mean_delta: float
    std_delta: float
    score: float  # PHID0*, paper 000 Table 4
    phid_clean: list[float]
    phid_shift: list[float]
    seconds: float
    # trajectories left out of the score: a non-finite PHID0 (one that barely moves has too few
    # distinct points; a degenerate fit gives inf), clean or shifted, and a different one in the other
    excluded_seeds: list[int] = field(default_factory=list)

    @property
    def used(self) -> int:
        """Trajectories the score is computed from."""
        return len(self.phid_clean) - len(self.excluded_seeds)

    @property
    def defined(self) -> bool:
        """Whether the score exists (at least 2 usable trajectories)."""
        return self.used >= 2 and not math.isnan(self.score)


@dataclass
class PhidRecord:
    """`vfmbench analyze phid`'s record (``<out>/phid.json``)."""

    task: str
    shift: str
    trajectories: int
    seed: int  # trajectory i is the expert's episode from seed + i, clean and shifted
    estimator: PhidEstimator
    max_state_difference: float  # largest |state| gap between paired clean and shifted frames
    datasets: dict[str, str]  # "clean" / "shift" -> the folders the trajectories were collected into
    results: list[PhidResult]
    figures: list[str] = field(default_factory=list)
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PhidRecord":
        """The record from its JSON mapping; DatasetError names a wrong schema or a missing key."""
        if data.get("schema") != SCHEMA:
            raise DatasetError(f"not a PHID0 record: schema {data.get('schema')!r}, expected {SCHEMA!r}")
        try:
            kw = dict(data)
            kw["estimator"] = PhidEstimator(**kw["estimator"])
            kw["results"] = [PhidResult(**{k: json_number(v) for k, v in r.items()}) for r in kw["results"]]
            kw["max_state_difference"] = json_number(kw["max_state_difference"])
            return cls(**kw)
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"PHID0 record is malformed ({exc}); write it again with vfmbench analyze phid") from exc

    def markdown(self) -> str:
        """A markdown table: one row per encoder (PHID0 means over the trajectories used), then a
        note per encoder whose score leaves trajectories out or is not defined."""
        lines = [f"PHID0 on {self.task}, clean vs {self.shift}, {self.trajectories} trajectories "
                 f"(alpha {self.estimator.alpha})", "",
                 "| encoder | d | trajectories used | PHID0 clean | PHID0 shifted | mean Δ | s | PHID0* |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in self.results:
            clean, shift = _used_mean(r, r.phid_clean, self.seed), _used_mean(r, r.phid_shift, self.seed)
            if r.defined:
                tail = f"{r.mean_delta:.3g} | {r.std_delta:.3g} | {r.score:.2f}"
            else:
                tail = "n/a | n/a | not defined (fewer than 2 usable trajectories)"
            lines.append(f"| {md_cell(r.encoder)} | {r.embed_dim} | {r.used} of {len(r.phid_clean)} | {clean} | {shift} | {tail} |")
        notes = exclusion_notes(self)
        if notes:
            lines += ["", *notes]
        return "\n".join(lines) + "\n"


def exclusion_notes(record: PhidRecord) -> list[str]:
    """One sentence per encoder that left trajectories out of its score (empty when none did)."""
    notes = []
    for r in record.results:
        if r.excluded_seeds:
            seeds = ", ".join(str(s) for s in r.excluded_seeds)
            notes.append(f"{r.encoder}: {len(r.excluded_seeds)} of {len(r.phid_clean)} trajectories left out "
                         f"(seeds {seeds}): PHID0 not finite (too few distinct points, or a degenerate fit)"
                         + ("" if r.defined else "; the score is not defined"))
    return notes


def _used_mean(r: PhidResult, values: list[float], seed: int) -> str:
    used = [v for i, v in enumerate(values) if seed + i not in r.excluded_seeds and math.isfinite(v)]
    return f"{np.mean(used):.2f}" if used else "n/a"


# -- the analysis ---------------------------------------------------------------------------------
def collect_pairs(task: str, shift: str, trajectories: int, seed: int, folder: str | Path,
                  progress: bool = True) -> tuple[Any, Any]:
    """The expert's episodes from seeds ``seed .. seed + trajectories - 1``, collected (resumably)
    with the project's collection code into ``folder/<task>-none-s<seed>`` and
    ``folder/<task>-<shift>-s<seed>``; failures are kept so that episode i is seed + i in both.
    Returns the two `EpisodeDataset`s (clean, shifted)."""
    from vfmbench.data.collection import CollectConfig, collect
    from vfmbench.tasks import TaskConfig

    if shift == "none":
        raise ConfigError("--shift none compares the clean trajectories with themselves; name a shift "
                          "(vfmbench shifts list), e.g. distractor")
    folder = Path(folder)
    out = []
    for name in ("none", shift):
        config = CollectConfig(task=task, episodes=trajectories, seed=seed, keep_failures=True,
                               task_config=TaskConfig(shift=name))
        out.append(collect(config, folder / f"{task}-{name}-s{seed}", progress=progress))
    return out[0], out[1]


def frozen_encoder_specs(names: list[str]) -> list[Any]:
    """The registry entries of `names` (UnknownNameError lists the valid ones); ConfigError for
    none, or for an encoder trained jointly with a policy (it has no fixed embeddings)."""
    from vfmbench.encoders import get_encoder_spec

    if not names:
        raise ConfigError("name at least one encoder (vfmbench encoders list)")
    specs = [get_encoder_spec(name) for name in names]
    for spec in specs:
        if spec.trainable:
            raise ConfigError(f"encoder {spec.name!r} is trained jointly with a policy, so it has no fixed "
                              "embeddings to analyse; use a frozen encoder (vfmbench encoders list: trainable False)")
    return specs


def run_phid(encoders: list[str], *, task: str = "fetch_push", shift: str = "distractor", trajectories: int = 100,
             seed: int = 0, out: str | Path, estimator: PhidEstimator = PhidEstimator(),
             random_weights: bool = False, data_dir: str | Path | None = None, cache: Any = None,
             device: str = "auto", batch_size: int = 64, progress: bool = True) -> PhidRecord:
    """Paper 000 §7.2 for `encoders` (registry names): collect the paired clean/shifted expert
    trajectories, embed every frame with each frozen encoder (through the cache), estimate PHID0
    per trajectory and score each encoder; writes ``out/phid.json`` and ``out/phid.png``.

    random_weights: encoders with pretrained weights use random ones (labelled "(random)").
    data_dir: where the trajectories are collected (default ``out/trajectories``; reused and
    extended on a rerun). Raises UnknownNameError for an unknown encoder, ConfigError for a
    trainable one or bad settings, WeightsError for missing weights — all before collecting."""
    from tqdm.auto import tqdm

    from vfmbench.cache import EmbeddingCache
    from vfmbench.encoders import create_encoder, encoder_label
    from vfmbench.tasks import get_task_spec
    from vfmbench.training import resolve_device
    from vfmbench.utils.io import write_json_atomic

    estimator.validate()
    if trajectories < 2:
        raise ConfigError(f"the standardised score needs at least 2 trajectories, got {trajectories}")
    get_task_spec(task)
    specs = frozen_encoder_specs(encoders)  # unknown or trainable encoders fail before any work
    torch_device = resolve_device(device)
    pretrained = False if random_weights else None
    # image encoders are built (their weights checked) before collecting; vector ones need the task's sizes
    built = {spec.name: create_encoder(spec.name, pretrained=pretrained) for spec in specs if spec.embed_dim is not None}
    out = Path(out)
    clean, shifted = collect_pairs(task, shift, trajectories, seed, data_dir or out / "trajectories", progress)
    starts, lengths = clean.episode_starts[:trajectories], clean.episode_lengths[:trajectories]
    if not (np.array_equal(lengths, shifted.episode_lengths[:trajectories])
            and np.array_equal(starts, shifted.episode_starts[:trajectories])):
        raise DatasetError(f"{clean.root} and {shifted.root} hold episodes of different lengths; "
                           "they are not the same trajectories: delete both and run again")
    frames = int(starts[-1] + lengths[-1])
    state_gap = float(np.max(np.abs(clean.load("state")[:frames] - shifted.load("state")[:frames])))
    cache = cache or EmbeddingCache()
    spaces = clean.spaces
    results = []
    for spec in specs:
        t0 = time.perf_counter()
        encoder = built.get(spec.name) or create_encoder(spec.name, pretrained=pretrained,
                                                         input_dim=spaces.vector_dim(spec.input_key))
        feats = [cache.get_or_compute(encoder, ds, encoder.input_key, batch_size=batch_size, device=torch_device,
                                      progress=progress)[:frames] for ds in (clean, shifted)]
        bar = tqdm(total=2 * trajectories, desc=f"PHID0 {spec.name}", unit="traj", disable=not progress)
        z: list[list[float]] = [[], []]
        for i, (s, n) in enumerate(zip(starts, lengths)):
            for k in (0, 1):
                z[k].append(estimator.estimate(feats[k][s : s + n], seed=i))
                bar.update(1)
        bar.close()
        dim = int(feats[0].shape[1])
        label = encoder_label(encoder)
        identical = [np.array_equal(feats[0][s : s + n], feats[1][s : s + n]) for s, n in zip(starts, lengths)]
        _, usable = pair_deltas(z[0], z[1], dim, identical)
        excluded = [seed + i for i in np.flatnonzero(~usable).tolist()]
        if len(excluded) > trajectories - 2:
            mean, s, score = math.nan, math.nan, math.nan
        else:
            mean, s, score = standardised_score(np.asarray(z[0]), np.asarray(z[1]), dim, identical)
        if excluded:
            what = ("the score is not defined (fewer than 2 usable trajectories)" if math.isnan(score)
                    else f"the score uses the other {trajectories - len(excluded)}")
            print(f"vfmbench: warning: PHID0 {label}: {len(excluded)} of {trajectories} trajectories have no finite "
                  f"PHID0 (seeds {', '.join(map(str, excluded))}: too few distinct points or a degenerate fit) and are "
                  f"left out; {what}", file=sys.stderr)
        results.append(PhidResult(label, dim, mean, s, score, z[0], z[1], round(time.perf_counter() - t0, 2),
                                  excluded_seeds=excluded))
    record = PhidRecord(task=task, shift=shift, trajectories=trajectories, seed=seed, estimator=estimator,
                        max_state_difference=state_gap,
                        datasets={"clean": str(clean.root), "shift": str(shifted.root)}, results=results)
    out.mkdir(parents=True, exist_ok=True)
    record.figures = [plot_phid(record, clean.load("pixels")[int(starts[0])], shifted.load("pixels")[int(starts[0])],
                                out / FIGURE).name]
    write_json_atomic(out / "phid.json", record.to_dict())
    return record


def plot_phid(record: PhidRecord, clean_frame: np.ndarray, shift_frame: np.ndarray, path: Path) -> Path:
    """The figure: the first trajectory's first frame clean and shifted, then per encoder PHID0
    of every trajectory clean (x) against shifted (y), with the score. Needs the ``viz`` extra."""
    plt = _pyplot()
    n = len(record.results)
    fig, axes = plt.subplots(1, 2 + n, figsize=(2.8 * (2 + n), 3.0))
    for ax, frame, title in zip(axes[:2], (clean_frame, shift_frame), ("clean", record.shift)):
        ax.imshow(frame)
        ax.set_title(f"{record.task}: {title}", fontsize=8)
        ax.axis("off")
    for ax, r in zip(axes[2:], record.results):
        ax.scatter(r.phid_clean, r.phid_shift, s=8, alpha=0.7)
        finite = [v for v in (*r.phid_clean, *r.phid_shift) if math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        score = f"PHID0* = {r.score:.2f}" if r.defined else "PHID0* not defined"
        used = f" ({r.used} of {len(r.phid_clean)})" if r.excluded_seeds else ""
        ax.set_title(f"{r.encoder}\n{score}{used}", fontsize=8)
        ax.set_xlabel("PHID0 clean", fontsize=8)
        ax.set_ylabel(f"PHID0 {record.shift}", fontsize=8)
        ax.tick_params(labelsize=7)
    notes = exclusion_notes(record)
    fig.tight_layout(rect=(0, 0.05 * len(notes), 1, 1) if notes else None)
    for k, note in enumerate(notes):  # the caption: what the scores leave out
        fig.text(0.01, 0.05 * (len(notes) - 1 - k) + 0.01, note, fontsize=6, ha="left", va="bottom")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        from vfmbench.utils.errors import MissingDependencyError

        raise MissingDependencyError("the analysis figures need matplotlib: pip install 'vfmbench[viz]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

