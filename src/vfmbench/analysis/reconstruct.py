"""Reconstruction: how much of a frame an encoder's embedding keeps (paper 000 §7.1, Fig. 3, A.3).

One decoder per encoder, trained from the encoder's cached embeddings of a dataset's frames back to
the frames: a feed-forward network with hidden layers [1024, 2048, 5096] and ReLU, its output
reshaped to ``3 x 224 x 224``, trained 20 epochs with batch 32 by AdamW at learning rate 0.001
(paper 000 A.3). The appendix names no loss: the decoder minimises the mean squared error of
pixels in [0, 1]. Embeddings are standardised with the training split's mean and std by the
trainer's feature normaliser (`agents.agent.Normalizer`, whose std floor keeps nearly constant
dimensions from being divided by ~0). The error is measured on held-out episodes (the
split is by episode, never by frame) beside the error of the training split's mean frame, which
any decoder can reach without information from the embedding.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vfmbench.agents.agent import Normalizer
from vfmbench.analysis.records import md_cell
from vfmbench.utils.errors import ConfigError, DatasetError

SCHEMA = "vfmbench.analysis.reconstruct/1"
FIGURE = "reconstruct.png"


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder architecture and training; the defaults are paper 000 A.3's (`weight_decay` is
    AdamW's default, the paper gives none). `holdout`: the fraction of episodes held out
    (at least one); `seed` draws the split, the initial weights and the batch order."""

    hidden: tuple[int, ...] = (1024, 2048, 5096)
    resolution: int = 224
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    holdout: float = 0.2
    seed: int = 0

    def validate(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden must be a non-empty list of positive widths, got {list(self.hidden)}")
        if not 8 <= self.resolution <= 1024:
            raise ConfigError(f"resolution must be between 8 and 1024 pixels, got {self.resolution}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"lr must be positive and weight_decay non-negative, got {self.lr}, {self.weight_decay}")
        if not 0 < self.holdout < 1:
            raise ConfigError(f"holdout must be a fraction between 0 and 1, got {self.holdout}")


def make_decoder(embed_dim: int, config: DecoderConfig) -> nn.Sequential:
    """``[B, embed_dim]`` -> ``[B, 3 * R * R]`` (R = config.resolution): Linear+ReLU per hidden
    width, then a linear output layer (paper 000 A.3 reshapes it to ``3 x R x R``)."""
    layers: list[nn.Module] = []
    width = embed_dim
    for h in config.hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 3 * config.resolution**2))
    return nn.Sequential(*layers)


def episode_split(num_episodes: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) episode indices, sorted: ``ceil(holdout * E)`` episodes held out (at least 1),
    drawn with `seed`. Raises DatasetError with fewer than 2 episodes."""
    if num_episodes < 2:
        raise DatasetError(f"a held-out split by episode needs at least 2 episodes, the dataset has {num_episodes}; "
                           "collect more (vfmbench collect --episodes N)")
    order = np.random.default_rng(seed).permutation(num_episodes)
    k = min(num_episodes - 1, max(1, math.ceil(holdout * num_episodes)))
    return np.sort(order[k:]), np.sort(order[:k])


def resize_frames(frames: np.ndarray, resolution: int, batch: int = 256) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> uint8 ``[N, 3, R, R]`` (bilinear, antialiased when shrinking)."""
    import torch.nn.functional as F

    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DatasetError(f"reconstruction needs RGB frames [N, H, W, 3], got shape {list(frames.shape)} "
                           "(stacked or masked frames are not supported)")
    out = np.empty((len(frames), 3, resolution, resolution), np.uint8)
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i : i + batch]).permute(0, 3, 1, 2).float()
        if x.shape[-1] != resolution or x.shape[-2] != resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > resolution)
        out[i : i + batch] = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


@dataclass
class DecoderFit:
    """A trained decoder and its errors (mean squared error of pixels in [0, 1], per pixel and
    channel); `test_start` / `test_end`: over the held-out episodes' first / last frames."""

    decoder: nn.Sequential
    norm: Normalizer  # fitted to the training split's features
    train_mse: float
    test_mse: float
    test_start_mse: float
    test_end_mse: float
    losses: list[float]  # mean training loss of each epoch

    @torch.no_grad()
    def reconstruct(self, features: np.ndarray) -> np.ndarray:
        """``[B, D]`` embeddings -> float32 ``[B, 3, R, R]`` frames clipped to [0, 1]."""
        device = self.norm.mean.device
        y = self.decoder(self.norm(torch.from_numpy(np.asarray(features, np.float32)).to(device)))
        r = int(round(math.sqrt(y.shape[1] // 3)))
        return y.clamp(0, 1).reshape(-1, 3, r, r).cpu().numpy()


def fit_decoder(features: np.ndarray, targets: np.ndarray, episode: np.ndarray, train_episodes: np.ndarray,
                test_episodes: np.ndarray, config: DecoderConfig = DecoderConfig(), device: str | torch.device = "cpu",
                progress: bool = True, desc: str = "decoder") -> DecoderFit:
    """Train a decoder from ``features [N, D]`` (float) to ``targets [N, 3, R, R]`` (uint8) on the
    frames of `train_episodes` and measure it on those of `test_episodes` (``episode [N]``: each
    frame's episode index; the first / last frame of each held-out episode give the start / end
    errors). Deterministic for `config.seed` on CPU."""
    from tqdm.auto import tqdm

    config.validate()
    if len(features) != len(targets) or len(features) != len(episode):
        raise ConfigError(f"features ({len(features)}), targets ({len(targets)}) and episode ({len(episode)}) "
                          "must have one row per frame")
    if targets.shape[1:] != (3, config.resolution, config.resolution):
        raise ConfigError(f"targets have shape {list(targets.shape[1:])}, the decoder outputs "
                          f"[3, {config.resolution}, {config.resolution}]")
    device = torch.device(device)
    train = np.flatnonzero(np.isin(episode, train_episodes))
    test = np.flatnonzero(np.isin(episode, test_episodes))
    firsts = np.array([np.flatnonzero(episode == e)[0] for e in test_episodes])
    lasts = np.array([np.flatnonzero(episode == e)[-1] for e in test_episodes])
    features = np.asarray(features, np.float32)
    norm = Normalizer(features.shape[1]).fit(features[train]).to(device)
    feats = norm(torch.from_numpy(features).to(device))
    frames = torch.from_numpy(targets)  # uint8, converted batch by batch
    torch.manual_seed(config.seed)
    decoder = make_decoder(feats.shape[1], config).to(device)
    opt = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    losses = []
    bar = tqdm(total=config.epochs * steps_per_epoch, desc=desc, unit="batch", disable=not progress)
    decoder.train()
    for _ in range(config.epochs):
        order = train[torch.randperm(len(train), generator=gen).numpy()]
        total = 0.0
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            y = frames[idx].to(device).float().div_(255).flatten(1)
            loss = torch.nn.functional.mse_loss(decoder(feats[idx]), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update(1)
        losses.append(total / len(order))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    decoder.eval()
    fit = DecoderFit(decoder, norm, math.nan, math.nan, math.nan, math.nan, losses)
    fit.train_mse = _mse(fit, feats, frames, train, config.batch_size)
    fit.test_mse = _mse(fit, feats, frames, test, config.batch_size)
    fit.test_start_mse = _mse(fit, feats, frames, firsts, config.batch_size)
    fit.test_end_mse = _mse(fit, feats, frames, lasts, config.batch_size)
    return fit


@torch.no_grad()
def _mse(fit: DecoderFit, feats: torch.Tensor, frames: torch.Tensor, rows: np.ndarray, batch: int) -> float:
    """Mean squared error over `rows` of standardised `feats` against uint8 `frames`."""
    total = 0.0
    for i in range(0, len(rows), batch * 8):
        idx = rows[i : i + batch * 8]
        y = frames[idx].to(feats.device).float().div_(255).flatten(1)
        total += float(((fit.decoder(feats[idx]).clamp(0, 1) - y) ** 2).mean(1).sum())
    return total / len(rows)


def mean_frame_mse(targets: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """MSE on the `test` rows of predicting the `train` rows' mean frame: the error of a decoder
    that ignores its input (targets uint8 ``[N, 3, R, R]``; result for pixels in [0, 1])."""
    mean = targets[train].astype(np.float64).mean(0) / 255
    return float(np.mean([((t.astype(np.float64) / 255 - mean) ** 2).mean() for t in targets[test]]))


# -- the record -----------------------------------------------------------------------------------
@dataclass
class ReconstructionResult:
    """One encoder's decoder: errors (MSE of pixels in [0, 1]) on the training frames, the
    held-out frames, and the held-out episodes' first and last frames, and its PSNR (dB)."""

    encoder: str  # label; pretrained-model entries with random weights end in "(random)"
    embed_dim: int
    train_mse: float
    test_mse: float
    test_psnr: float
    test_start_mse: float
    test_end_mse: float
    final_loss: float
    seconds: float


@dataclass
class ReconstructionRecord:
    """`vfmbench analyze reconstruct`'s record (``<out>/reconstruct.json``)."""

    dataset: str
    task: str
    config: DecoderConfig
    train_episodes: list[int]
    test_episodes: list[int]
    test_frames: int
    mean_frame_mse: float  # held-out error of the training split's mean frame (no information)
    results: list[ReconstructionResult]
    figures: list[str] = field(default_factory=list)
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"]["hidden"] = list(self.config.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReconstructionRecord":
        """The record from its JSON mapping; DatasetError names a wrong schema or a missing key."""
        if data.get("schema") != SCHEMA:
            raise DatasetError(f"not a reconstruction record: schema {data.get('schema')!r}, expected {SCHEMA!r}")
        try:
            kw = dict(data)
            kw["config"] = DecoderConfig(**{**kw["config"], "hidden": tuple(kw["config"]["hidden"])})
            kw["results"] = [ReconstructionResult(**r) for r in kw["results"]]
            return cls(**kw)
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"reconstruction record is malformed ({exc}); write it again with "
                               "vfmbench analyze reconstruct") from exc

    def markdown(self) -> str:
        """A markdown table: one row per encoder, best held-out error first in the file's order."""
        c = self.config
        lines = [f"Reconstruction on {self.task}: {len(self.train_episodes)} training / {len(self.test_episodes)} "
                 f"held-out episodes, 3x{c.resolution}x{c.resolution}, {c.epochs} epochs; mean-frame MSE "
                 f"{self.mean_frame_mse:.4f}", "",
                 "| encoder | d | held-out MSE | PSNR (dB) | start MSE | end MSE | train MSE |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.results:
            lines.append(f"| {md_cell(r.encoder)} | {r.embed_dim} | {r.test_mse:.4f} | {r.test_psnr:.1f} | "
                         f"{r.test_start_mse:.4f} | {r.test_end_mse:.4f} | {r.train_mse:.4f} |")
        return "\n".join(lines) + "\n"


# -- the analysis ---------------------------------------------------------------------------------
def run_reconstruct(encoders: list[str], dataset: str | Path, out: str | Path, config: DecoderConfig = DecoderConfig(),
                    *, random_weights: bool = False, figure_episodes: int = 1, cache: Any = None,
                    device: str = "auto", embed_batch_size: int = 64, progress: bool = True) -> ReconstructionRecord:
    """Paper 000 §7.1 / A.3 for `encoders` (registry names) on the dataset folder `dataset`:
    embed its frames with each frozen encoder through the embedding cache (computed on a miss,
    as training does), train one decoder per encoder on the training episodes, measure the
    held-out episodes; writes ``out/reconstruct.json`` and ``out/reconstruct.png`` (the first
    and last frame of `figure_episodes` held-out episodes, true and reconstructed per encoder).

    random_weights: encoders with pretrained weights use random ones (labelled "(random)").
    Raises UnknownNameError for an unknown encoder, ConfigError for a trainable one or bad
    settings, DatasetError for a missing dataset, WeightsError for missing weights — all before
    any training."""
    from vfmbench.analysis.phid import frozen_encoder_specs
    from vfmbench.cache import EmbeddingCache
    from vfmbench.data.collection import open_dataset
    from vfmbench.encoders import create_encoder, encoder_label
    from vfmbench.training import resolve_device
    from vfmbench.utils.io import write_json_atomic

    config.validate()
    if figure_episodes < 0:
        raise ConfigError(f"figure_episodes must be non-negative, got {figure_episodes}")
    specs = frozen_encoder_specs(encoders)  # unknown or trainable encoders fail before any work
    torch_device = resolve_device(device)
    ds = open_dataset(dataset)
    if not ds.has("pixels"):
        raise DatasetError(f"{ds.root} has no 'pixels' array to reconstruct; it has: {', '.join(ds.arrays) or 'none'}")
    built = []
    for spec in specs:  # weights are checked (and loaded) before any training
        input_dim = ds.spaces.vector_dim(spec.input_key) if spec.embed_dim is None else None
        built.append(create_encoder(spec.name, pretrained=False if random_weights else None, input_dim=input_dim))
    train_eps, test_eps = episode_split(ds.num_episodes, config.holdout, config.seed)
    episode = ds.episode_index()
    targets = resize_frames(ds.load("pixels"), config.resolution)
    test_rows = np.flatnonzero(np.isin(episode, test_eps))
    baseline = mean_frame_mse(targets, np.flatnonzero(np.isin(episode, train_eps)), test_rows)
    cache = cache or EmbeddingCache()
    shown = test_eps[:figure_episodes]
    rows = np.array([r for e in shown for r in (np.flatnonzero(episode == e)[0], np.flatnonzero(episode == e)[-1])],
                    dtype=np.int64)
    results, pictures = [], []
    for encoder in built:
        t0 = time.perf_counter()
        feats = cache.get_or_compute(encoder, ds, encoder.input_key, batch_size=embed_batch_size,
                                     device=torch_device, progress=progress)
        label = encoder_label(encoder)
        fit = fit_decoder(feats, targets, episode, train_eps, test_eps, config, torch_device, progress,
                          desc=f"decoder {label}")
        results.append(ReconstructionResult(
            encoder=label, embed_dim=int(feats.shape[1]), train_mse=fit.train_mse, test_mse=fit.test_mse,
            test_psnr=-10 * math.log10(max(fit.test_mse, 1e-12)), test_start_mse=fit.test_start_mse,
            test_end_mse=fit.test_end_mse, final_loss=fit.losses[-1], seconds=round(time.perf_counter() - t0, 2)))
        pictures.append(fit.reconstruct(feats[rows]) if len(rows) else None)
    record = ReconstructionRecord(
        dataset=str(ds.root), task=str(ds.task.get("task", "?")), config=config,
        train_episodes=train_eps.tolist(), test_episodes=test_eps.tolist(), test_frames=len(test_rows),
        mean_frame_mse=baseline, results=results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if len(rows):
        record.figures = [plot_reconstructions(targets[rows], pictures, [r.encoder for r in results],
                                               [int(e) for e in shown], out / FIGURE).name]
    write_json_atomic(out / "reconstruct.json", record.to_dict())
    return record


def plot_reconstructions(truth: np.ndarray, pictures: list[np.ndarray], labels: list[str], episodes: list[int],
                         path: Path) -> Path:
    """Paper 000 Fig. 3's layout: rows are the start and end frame of each shown episode, columns
    the true frame (uint8 ``[2k, 3, R, R]``) and each encoder's reconstruction (float ``[2k, 3, R, R]``
    in [0, 1]). Needs the ``viz`` extra."""
    from vfmbench.analysis.phid import _pyplot

    plt = _pyplot()
    rows, cols = len(truth), 1 + len(pictures)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows + 0.3), squeeze=False)
    for r in range(rows):
        images = [truth[r].transpose(1, 2, 0)] + [p[r].transpose(1, 2, 0) for p in pictures]
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("true frame" if c == 0 else labels[c - 1], fontsize=7)
        axes[r, 0].set_ylabel(f"episode {episodes[r // 2]}\n{'start' if r % 2 == 0 else 'end'}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
