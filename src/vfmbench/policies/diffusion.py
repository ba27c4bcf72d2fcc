"""Diffusion Policy (Chi et al., 2023) with a 1-D convolutional U-Net (`dp_conv`) or a
transformer (`dp_transformer`) as the noise-prediction network; paper 001 §III-B2.

Windows: the policy sees `obs_horizon` observation steps ``t-To+1 .. t`` and models the
`pred_horizon` actions from ``t-To+1`` on; at evaluation it executes `action_horizon` of
them, starting at step t (an action chunk), before observing again.

Training (DDPM, Ho et al. 2020): ``x0`` is the action window, ``k ~ U{0..K-1}``,
``eps ~ N(0, I)``, ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps`` (diffusers'
`DDPMScheduler.add_noise`) and the loss is ``||eps - eps_theta(x_k, k, obs)||^2``. Sampling
is DDIM (Song et al. 2021, eta = 0; diffusers' `DDIMScheduler`) with `inference_steps` steps.
`NoiseSchedule` below configures both alike, as LeRobot does. An exponential moving average of
the network (DP's EMA: decay ``1 - (1 + n)^-0.75`` at the n-th update, capped at 0.9999;
torch's `AveragedModel`) is used for sampling.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vfmbench.policies.base import (
    Metrics,
    Generators,
    Batch,
    MethodConfig,
    MethodSpec,
    Policy,
    PolicyDims,
    observation_dim,
    observation_vector,
    on_cuda,
    register_method,
)
from vfmbench.utils.errors import ConfigError

if TYPE_CHECKING:
    from diffusers import DDIMScheduler, DDPMScheduler

# -- noise schedule ------------------------------------------------------------------------------


class NoiseSchedule:
    """diffusers' DDPM scheduler (training) and DDIM scheduler (sampling) over `steps` steps.

    Both get the same betas: ``squaredcos_cap_v2`` (Nichol & Dhariwal 2021, betas capped at
    0.999) or ``linear`` (``linspace(beta_start, beta_end, steps)``, diffusers' semantics: not
    rescaled to the number of steps). Epsilon prediction; DDIM with "leading" spacing
    (``K // n`` apart, ending at step 0), no offset, the predicted x0 clipped to [-1, 1] with
    `clip_sample`, and ``abar = 1`` after the last step (``set_alpha_to_one``).
    """

    def __init__(self, steps: int = 100, beta_schedule: str = "squaredcos_cap_v2", clip_sample: bool = True,
                 beta_start: float = 1e-4, beta_end: float = 0.02):
        from diffusers import DDIMScheduler, DDPMScheduler  # imported here: ~3 s, only for diffusion policies

        common: dict[str, Any] = dict(num_train_timesteps=steps, beta_start=beta_start, beta_end=beta_end,
                                      beta_schedule=beta_schedule, clip_sample=clip_sample, clip_sample_range=1.0,
                                      prediction_type="epsilon", timestep_spacing="leading", steps_offset=0)
        self.steps = steps
        self.train: DDPMScheduler = DDPMScheduler(**common)
        self.sampler: DDIMScheduler = DDIMScheduler(**common, set_alpha_to_one=True)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) noise``; x0, noise ``[B, ...]``, k ``[B]``."""
        return self.train.add_noise(x0, noise, k)

    def ddim_timesteps(self, n: int) -> list[int]:
        """The n steps visited by DDIM, descending."""
        self.sampler.set_timesteps(n)
        return [int(t) for t in self.sampler.timesteps]

    def sample(self, eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
               n_steps: int, device: torch.device | str = "cpu",
               generator: Generators = None) -> torch.Tensor:
        """DDIM from ``x_K ~ N(0, I)`` of `shape` (drawn from `generator`: one, or one per row);
        ``eps_fn(x_k, k [B]) -> eps``."""
        from diffusers.utils.torch_utils import randn_tensor

        x = randn_tensor(shape, generator=generator, device=torch.device(device))
        for k in self.ddim_timesteps(n_steps):
            eps = eps_fn(x, torch.full((shape[0],), k, device=x.device, dtype=torch.long))
            x = self.sampler.step(eps, k, x, eta=0.0, return_dict=False)[0]
        return x


# -- EMA ------------------------------------------------------------------------------------------


def ema_decay(update: int, power: float = 0.75, max_decay: float = 0.9999) -> float:
    """DP's EMA decay at the `update`-th update (1-based): ``min(max_decay, 1 - (1 + update)^-power)``."""
    return min(max_decay, max(0.0, 1 - (1 + update) ** -power))


@dataclass(frozen=True)
class DPEmaUpdate:
    """`AveragedModel`'s ``multi_avg_fn`` for DP's decay schedule.

    `AveragedModel` copies the network at its first update and calls this from the second on
    with ``n_averaged`` = the updates so far, so this is update ``n_averaged + 1``.
    """

    power: float = 0.75
    max_decay: float = 0.9999

    def __call__(self, averaged: list[torch.Tensor], current: list[torch.Tensor],
                 n_averaged: torch.Tensor | int) -> None:
        decay = ema_decay(int(n_averaged) + 1, self.power, self.max_decay)
        get_ema_multi_avg_fn(decay)(averaged, current, n_averaged)


def lr_scale(step: int, warmup: int, total: int) -> float:
    """DP's learning-rate schedule (diffusers' ``cosine`` with warm-up): linear from 0 to 1 over
    `warmup` steps, then ``0.5 (1 + cos(pi p))`` with p the fraction of the remaining steps done."""
    if step < warmup:
        return step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


# -- networks -------------------------------------------------------------------------------------


class SinusoidalEmbedding(nn.Module):
    """``[B]`` integer steps -> ``[B, dim]`` sin/cos features (Vaswani et al. 2017)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=k.device) / max(half - 1, 1))
        args = k.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ConvBlock(nn.Sequential):
    """Conv1d - GroupNorm - Mish, length preserving."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish())


class FiLMResBlock(nn.Module):
    """Two conv blocks; the condition sets a per-channel scale and bias after the first (FiLM)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.block1 = ConvBlock(c_in, c_out, kernel, groups)
        self.block2 = ConvBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:  # x [B, C, T], cond [B, C']
        scale, bias = self.film(cond)[:, :, None].chunk(2, dim=1)
        h = self.block1(x) * scale + bias
        return self.block2(h) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """DP-C's noise network: ``x [B, T, A], k [B], cond [B, C] -> eps [B, T, A]``.

    Levels of `down_dims` channels, each two FiLM residual blocks then a stride-2 downsample
    (not after the last); two middle blocks; the mirror image upwards with skip connections.
    """

    def __init__(self, action_dim: int, cond_dim: int, down_dims: list[int], kernel: int, groups: int, step_dim: int):
        super().__init__()
        self.step_embed = nn.Sequential(SinusoidalEmbedding(step_dim), nn.Linear(step_dim, 4 * step_dim), nn.Mish(),
                                        nn.Linear(4 * step_dim, step_dim))
        c = step_dim + cond_dim
        dims = [action_dim, *down_dims]
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([
                FiLMResBlock(a, b, c, kernel, groups), FiLMResBlock(b, b, c, kernel, groups),
                nn.Identity() if last else nn.Conv1d(b, b, 3, stride=2, padding=1),
            ]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock(mid, mid, c, kernel, groups), FiLMResBlock(mid, mid, c, kernel, groups)])
        self.up = nn.ModuleList()
        for a, b in reversed(list(zip(down_dims[:-1], down_dims[1:]))):
            self.up.append(nn.ModuleList([
                FiLMResBlock(2 * b, a, c, kernel, groups), FiLMResBlock(a, a, c, kernel, groups),
                nn.ConvTranspose1d(a, a, 4, stride=2, padding=1),
            ]))
        self.final = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], kernel, groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, x: torch.Tensor, k: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = torch.cat([self.step_embed(k), cond], dim=-1)
        h = x.transpose(1, 2)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, c), c)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, c)
        for res1, res2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(res2(res1(h, c), c))
        return self.final(h).transpose(1, 2)


def _init_transformer_weights(module: nn.Module) -> None:
    """DP-T's initialisation: linear and attention projections N(0, 0.02) with zero biases,
    LayerNorms at ones and zeros."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.MultiheadAttention):
        nn.init.normal_(module.in_proj_weight, std=0.02)
        if module.in_proj_bias is not None:
            nn.init.zeros_(module.in_proj_bias)
        if module.out_proj.bias is not None:
            nn.init.zeros_(module.out_proj.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class DiffusionTransformer(nn.Module):
    """DP-T's noise network: ``x [B, T, A], k [B], cond [B, To, C] -> eps [B, T, A]``.

    Action tokens go through a pre-norm transformer decoder with causal self-attention; the
    memory is the diffusion-step token followed by one token per observation step, and action
    t attends to observation steps up to t (DP's causal memory mask).
    """

    def __init__(self, action_dim: int, cond_dim: int, horizon: int, obs_horizon: int, n_layer: int, n_head: int,
                 n_emb: int, p_drop_emb: float, p_drop_attn: float, causal: bool):
        super().__init__()
        self.input_emb = nn.Linear(action_dim, n_emb)
        self.pos_emb = nn.Parameter(torch.zeros(1, horizon, n_emb))
        self.step_emb = SinusoidalEmbedding(n_emb)
        self.cond_emb = nn.Linear(cond_dim, n_emb)
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, 1 + obs_horizon, n_emb))
        self.drop = nn.Dropout(p_drop_emb)
        self.cond_encoder = nn.Sequential(nn.Linear(n_emb, 4 * n_emb), nn.Mish(), nn.Linear(4 * n_emb, n_emb))
        layer = nn.TransformerDecoderLayer(n_emb, n_head, 4 * n_emb, p_drop_attn, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, n_layer)
        self.ln = nn.LayerNorm(n_emb)
        self.head = nn.Linear(n_emb, action_dim)
        if causal:
            t = torch.arange(horizon)
            self.register_buffer("mask", t[None, :] > t[:, None], persistent=False)  # True: not attended
            s = torch.arange(1 + obs_horizon)
            self.register_buffer("memory_mask", t[:, None] < s[None, :] - 1, persistent=False)
        else:
            self.mask = self.memory_mask = None
        self.apply(_init_transformer_weights)  # DP-T's initialisation
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.cond_pos_emb, std=0.02)

    def forward(self, x: torch.Tensor, k: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        tokens = self.drop(self.input_emb(x) + self.pos_emb[:, : x.shape[1]])
        memory = torch.cat([self.step_emb(k)[:, None], self.cond_emb(cond)], dim=1)
        memory = self.cond_encoder(self.drop(memory + self.cond_pos_emb[:, : memory.shape[1]]))
        h = self.decoder(tokens, memory, tgt_mask=self.mask, memory_mask=self.memory_mask)
        return self.head(self.ln(h))


# -- policies -------------------------------------------------------------------------------------


@dataclass
class DiffusionConfig(MethodConfig):
    """Shared options; defaults from Chi et al. and paper 001 §IV-A2 (Adam 1e-4, batch 128)."""

    lr: float = 1e-4
    batch_size: int = 128
    weight_decay: float = 1e-6
    obs_horizon: int = 2
    pred_horizon: int = 16
    action_horizon: int = 8
    train_steps: int = 100  # diffusion steps K
    inference_steps: int = 10  # DDIM steps at evaluation
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"
    beta_start: float = 1e-4  # linear schedule only (diffusers: not rescaled to train_steps)
    beta_end: float = 0.02
    clip_sample: bool = True
    warmup_steps: int = 500  # linear learning-rate warm-up, then cosine decay to 0 at the last step
    betas: tuple[float, float] = (0.95, 0.999)  # AdamW (DP-C; DP-T: 0.9, 0.95)
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999

    def validate(self) -> None:
        if self.obs_horizon < 1 or self.pred_horizon < 1:
            raise ConfigError("method_config.obs_horizon and pred_horizon must be positive")
        if not 1 <= self.action_horizon <= self.pred_horizon - self.obs_horizon + 1:
            raise ConfigError(
                f"method_config.action_horizon must be between 1 and pred_horizon - obs_horizon + 1 "
                f"({self.pred_horizon - self.obs_horizon + 1}), got {self.action_horizon}"
            )
        if not 1 <= self.inference_steps <= self.train_steps:
            raise ConfigError(f"method_config.inference_steps must be between 1 and train_steps ({self.train_steps})")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ConfigError(f"method_config.beta_start and beta_end must satisfy 0 < beta_start <= beta_end < 1, "
                              f"got {self.beta_start} and {self.beta_end}")


@dataclass
class DPConvConfig(DiffusionConfig):
    down_dims: list[int] = field(default_factory=lambda: [256, 512, 1024])
    kernel_size: int = 5
    n_groups: int = 8
    step_embed_dim: int = 256

    def validate(self) -> None:
        super().validate()
        factor = 2 ** (len(self.down_dims) - 1)
        if self.pred_horizon % factor:
            raise ConfigError(f"method_config.pred_horizon ({self.pred_horizon}) must be divisible by {factor} "
                              f"for {len(self.down_dims)} U-Net levels")
        bad = [d for d in self.down_dims if d % self.n_groups]
        if bad:
            raise ConfigError(f"method_config.down_dims {bad} must be divisible by n_groups ({self.n_groups})")


@dataclass
class DPTransformerConfig(DiffusionConfig):
    weight_decay: float = 1e-3  # on linear and attention weights only (DP-T's parameter groups)
    betas: tuple[float, float] = (0.9, 0.95)
    n_layer: int = 8
    n_head: int = 4
    n_emb: int = 256
    p_drop_emb: float = 0.0
    p_drop_attn: float = 0.3
    causal_attn: bool = True

    def validate(self) -> None:
        super().validate()
        if self.n_emb % self.n_head:
            raise ConfigError(f"method_config.n_emb ({self.n_emb}) must be divisible by n_head ({self.n_head})")


class DiffusionPolicy(Policy):
    """Noise-prediction policy over action windows; subclasses build `net`.

    `net(x [B, Tp, A], k [B], cond) -> eps [B, Tp, A]`; `condition(batch)` gives `cond`.
    `ema` is torch's `AveragedModel` of `net` (its copy is ``ema.module``, its update count the
    buffer ``ema.n_averaged``; both are in the state dict, so a checkpoint resumes the average).
    """

    config: DiffusionConfig
    act_options = ("action_horizon", "inference_steps")  # actions executed per chunk, DDIM steps

    def __init__(self, config: DiffusionConfig, dims: PolicyDims):
        super().__init__(config, dims)
        to = config.obs_horizon
        self.obs_offsets = tuple(range(-to + 1, 1))
        self.action_offsets = tuple(range(-to + 1, config.pred_horizon - to + 1))
        self.history = to
        self.action_pad_after = config.action_horizon - 1  # DP's sampler: pad_after = n_action_steps - 1
        self.action_min = nn.Buffer(-torch.ones(dims.action_dim))
        self.action_max = nn.Buffer(torch.ones(dims.action_dim))
        self.schedule = NoiseSchedule(config.train_steps, config.beta_schedule, config.clip_sample,
                                      config.beta_start, config.beta_end)
        self.net = self.build_net(config, dims)
        self.ema = AveragedModel(self.net, multi_avg_fn=DPEmaUpdate(config.ema_power, config.ema_max_decay))
        self.ema.requires_grad_(False)
        self.register_load_state_dict_pre_hook(_reject_pre_averaged_model_ema)

    @abstractmethod
    def build_net(self, config: DiffusionConfig, dims: PolicyDims) -> nn.Module:
        """The noise-prediction network."""

    @abstractmethod
    def condition(self, batch: Batch) -> torch.Tensor:
        """The network's observation condition from a batch's observation window."""

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        x0 = self.normalize_actions(batch["actions"])
        noise = torch.randn_like(x0)
        k = torch.randint(0, self.schedule.steps, (x0.shape[0],), device=x0.device)
        pred = self.net(self.schedule.add_noise(x0, noise, k), k, self.condition(batch))
        loss = F.mse_loss(pred, noise)
        return loss, {"noise_mse": loss.detach()}

    def fit_actions(self, actions: torch.Tensor) -> None:
        """Min-max statistics of the training actions ``[N, A]`` (see `normalize_actions`)."""
        self.action_min.copy_(actions.amin(0))
        self.action_max.copy_(actions.amax(0))

    def normalize_actions(self, a: torch.Tensor) -> torch.Tensor:
        """Actions to [-1, 1] by the training set's per-dimension min and max (DP's normaliser);
        a dimension constant in the data (range < 1e-4) maps to 0, the centre of the sampler's
        clipping range, not to its boundary."""
        span = self.action_max - self.action_min
        flat = span < 1e-4
        scaled = 2 * (a - self.action_min) / torch.where(flat, torch.ones_like(span), span) - 1
        return torch.where(flat, a - self.action_min, scaled)

    def unnormalize_actions(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalize_actions`."""
        span = self.action_max - self.action_min
        flat = span < 1e-4
        return torch.where(flat, x + self.action_min, (x + 1) / 2 * span + self.action_min)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """AdamW parameter groups of the noise network: all with the config's weight decay (DP-C)."""
        return [{"params": list(self.net.parameters()), "weight_decay": self.config.weight_decay}]

    def configure_optimizers(self, encoder_params: list[nn.Parameter], total_steps: int) -> list[torch.optim.Optimizer]:
        """AdamW over the noise network (+ a jointly trained encoder, weight decay 1e-6 as DP's
        observation encoder); the EMA copy is not optimised."""
        self.total_steps = total_steps
        groups = self.parameter_groups()
        if encoder_params:
            groups.append({"params": encoder_params, "weight_decay": 1e-6})
        params = [q for g in groups for q in g["params"]]
        return [torch.optim.AdamW(groups, lr=self.config.lr, betas=tuple(self.config.betas), fused=on_cuda(params))]

    def update(self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int) -> Metrics:
        """The learning rate of this step (`lr_scale`), one step, then the EMA follows (its decay
        counts its own updates)."""
        scale = lr_scale(step, self.config.warmup_steps, getattr(self, "total_steps", step + 1))
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = self.config.lr * scale
        metrics = super().update(batch, optimizers, step)
        metrics["lr"] = self.config.lr * scale
        self.ema.update_parameters(self.net)
        return metrics

    @torch.no_grad()
    def sample(self, batch: Batch, generator: Generators = None) -> torch.Tensor:
        """A full predicted action window ``[B, pred_horizon, A]`` from the EMA network."""
        cond = self.condition(batch)
        b = cond.shape[0]
        shape = (b, self.config.pred_horizon, self.dims.action_dim)
        x = self.schedule.sample(lambda x, k: self.ema(x, k, cond), shape, self.config.inference_steps,
                                 device=cond.device, generator=generator)
        return self.unnormalize_actions(x)

    def act(self, batch: Batch, generator: Generators = None) -> torch.Tensor:
        """The `action_horizon` actions from the current step on, ``[B, Ta, A]``."""
        start = self.config.obs_horizon - 1
        return self.sample(batch, generator)[:, start : start + self.config.action_horizon]


def _reject_pre_averaged_model_ema(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str,
                                   local_metadata: Any, strict: bool, missing_keys: list[str],
                                   unexpected_keys: list[str], error_msgs: list[str]) -> None:
    """Checkpoints from before the EMA was an `AveragedModel` store it as ``ema.<name>``: say so
    (an error even with ``strict=False``, which would otherwise leave an untrained EMA)."""
    ema = prefix + "ema."
    old = [k for k in state_dict if k.startswith(ema) and not k.startswith((ema + "module.", ema + "n_averaged"))]
    if old:
        error_msgs.append(f"this checkpoint's diffusion EMA has the key names of an older vfmbench ({old[0]!r} "
                          f"instead of {ema}module.* and {ema}n_averaged); it cannot be loaded, retrain the run")


class DPConvPolicy(DiffusionPolicy):
    """DP-C: the observation window, flattened, is the U-Net's global FiLM condition."""

    config: DPConvConfig

    def build_net(self, config: DPConvConfig, dims: PolicyDims) -> nn.Module:
        return ConditionalUnet1D(dims.action_dim, observation_dim(dims, config.obs_horizon), config.down_dims,
                                 config.kernel_size, config.n_groups, config.step_embed_dim)

    def condition(self, batch: Batch) -> torch.Tensor:
        return observation_vector(batch)


class DPTransformerPolicy(DiffusionPolicy):
    """DP-T: one memory token per observation step (features, proprioception, goal)."""

    config: DPTransformerConfig

    def build_net(self, config: DPTransformerConfig, dims: PolicyDims) -> nn.Module:
        c = config
        return DiffusionTransformer(dims.action_dim, observation_dim(dims), c.pred_horizon, c.obs_horizon, c.n_layer,
                                    c.n_head, c.n_emb, c.p_drop_emb, c.p_drop_attn, c.causal_attn)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """DP-T's groups: weight decay on linear and attention projection weights; none on biases,
        norms and the positional embeddings."""
        # matrices are exactly the linear and attention weights; biases and norms are vectors,
        # the positional embeddings [1, T, C]
        decay = [p for p in self.net.parameters() if p.ndim == 2]
        no_decay = [p for p in self.net.parameters() if p.ndim != 2]
        return [{"params": decay, "weight_decay": self.config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def condition(self, batch: Batch) -> torch.Tensor:
        steps = batch["features"].shape[1]
        return torch.stack([observation_vector(batch, slice(t, t + 1)) for t in range(steps)], dim=1)


register_method(MethodSpec(
    "dp_conv", "Diffusion Policy with a 1-D convolutional U-Net: DDPM training, DDIM sampling, action chunks "
    "(paper 001 §III-B2, Chi et al. 2023)", DPConvConfig, DPConvPolicy, paper="001",
))
register_method(MethodSpec(
    "dp_transformer", "Diffusion Policy with a transformer noise network (paper 001 §III-B2, Chi et al. 2023)",
    DPTransformerConfig, DPTransformerPolicy, paper="001",
))
