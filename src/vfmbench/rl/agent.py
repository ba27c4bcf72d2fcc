"""The DrQ-v2 actor-critic (DDPG with twin critics, n-step targets, random-shift augmentation),
which PIE-G reuses with a frozen pretrained encoder (`vfmbench.rl.networks`).

One update (every `AgentConfig.update_every` agent steps), as DrQ-v2 does it:

1. ``obs`` and ``next_obs`` of a replay batch are shifted independently by up to `shift_pad`
   pixels (`vfmbench.encoders.augment.RandomShift`; all frames of a stack alike); the encoder
   sees the shifted frames, gradients reach it through the critic loss only.
2. Critic: ``target = R_n + discount * min(Q1', Q2')(next, a')`` with ``a' = mu(next) + clipped
   noise`` and the target critic ``Q'`` (Polyak average of the critic, rate `critic_tau`);
   ``R_n`` and ``discount`` (``gamma ** m``, 0 after a terminal) come from the replay buffer.
   Loss: squared error of both critics, summed.
3. Actor on the detached representation: maximise ``min(Q1, Q2)(obs, mu(obs) + clipped noise)``.
4. Target critic update.

Acting: the tanh mean plus Gaussian noise of the scheduled std (unclipped, clamped to the action
range) while training; the mean when evaluating.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vfmbench.encoders.augment import RandomShift
from vfmbench.rl.config import AgentConfig
from vfmbench.rl.networks import Actor, Critic, sample_action, soft_update
from vfmbench.rl.replay import Batch


class ActorCritic(nn.Module):
    """A DrQ-v2 agent around `encoder` (``[B, ...] -> [B, encoder.repr_dim]``).

    `pixels`: observations are uint8 frame stacks (augmented when updating); otherwise float
    states (not augmented). Parameters and optimisers live on `device`.
    """

    def __init__(self, encoder: nn.Module, action_dim: int, config: AgentConfig, pixels: bool, device: torch.device):
        super().__init__()
        self.config, self.pixels, self.action_dim = config, pixels, action_dim
        self.encoder = encoder
        repr_dim = encoder.repr_dim
        self.actor = Actor(repr_dim, action_dim, config.feature_dim, config.hidden_dim)
        self.critic = Critic(repr_dim, action_dim, config.feature_dim, config.hidden_dim)
        self.critic_target = Critic(repr_dim, action_dim, config.feature_dim, config.hidden_dim)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.aug = RandomShift(config.shift_pad) if pixels else nn.Identity()
        self.to(device)
        self.device = device
        trainable = [p for p in self.encoder.parameters() if p.requires_grad]
        self.encoder_opt = torch.optim.Adam(trainable, lr=config.lr) if trainable else None
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.lr)
        self.train(True)

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.encoder_opt, self.actor_opt, self.critic_opt) if o is not None]

    def persistent_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint stores: all but the frozen parameters of a registry encoder
        (rebuilt from the registry); its buffers (BatchNorm statistics) are kept."""
        frozen = {f"encoder.inner.{n}" for n, _ in getattr(self.encoder, "inner", nn.Module()).named_parameters()}
        return {k: v for k, v in self.state_dict().items() if k not in frozen}

    def to_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """`obs` on the agent's device. A replay batch of frame stacks ``[B, H, W, 3k]`` is a
        transposed view of contiguous ``[B, 3k, H, W]`` data: that is what is copied, and the view
        is taken again on the device (no strided copy on the host)."""
        if obs.ndim == 4 and not obs.flags.c_contiguous and obs.transpose(0, 3, 1, 2).flags.c_contiguous:
            return torch.from_numpy(obs.transpose(0, 3, 1, 2)).to(self.device).permute(0, 2, 3, 1)
        return torch.from_numpy(np.ascontiguousarray(obs)).to(self.device)

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, explore: bool) -> np.ndarray:
        """Actions ``[B, A]`` (float32, NumPy) for observations ``[B, ...]`` at agent step `step`;
        the networks are put in evaluation mode for it (BatchNorm uses its running statistics)."""
        was = self.training
        self.train(False)
        try:
            mu = self.actor(self.encoder(self.to_tensor(obs)))
            action = sample_action(mu, self.config.std(step), None) if explore else mu
        finally:
            self.train(was)
        return action.float().cpu().numpy()

    # -- learning -------------------------------------------------------------------------------
    def augment_pair(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The views of ``obs`` (for the critic and actor) and ``next_obs`` (for the target):
        independent random shifts of each."""
        return self.aug(obs), self.aug(next_obs)

    def target_critic(self) -> nn.Module:
        """The network the bootstrapped value comes from."""
        return self.critic_target

    def target_discount(self, discount: torch.Tensor) -> torch.Tensor:
        """The factor of the bootstrapped value: the buffer's ``gamma ** m`` (0 after a terminal)."""
        return discount

    def update(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """One DrQ-v2 update from a replay `batch` at agent step `step`; returns detached scalar
        tensors (critic_loss, actor_loss, q, target_q, batch_reward) without synchronising."""
        c = self.config
        obs, action = self.to_tensor(batch.obs), self.to_tensor(batch.action)
        reward, discount = self.to_tensor(batch.reward), self.to_tensor(batch.discount)
        next_obs = self.to_tensor(batch.next_obs)
        obs, next_obs = self.augment_pair(obs, next_obs)
        h = self.encoder(obs)
        with torch.no_grad():
            next_h = self.encoder(next_obs)
            std = c.std(step)
            next_action = sample_action(self.actor(next_h), std, c.std_clip)
            target_v = self.target_critic()(next_h, next_action).amin(dim=1, keepdim=True)
            target_q = reward + self.target_discount(discount) * target_v
        q = self.critic(h, action)
        critic_loss = (q - target_q).square().sum(1).mean()
        if self.encoder_opt is not None:
            self.encoder_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        if self.encoder_opt is not None:
            self.encoder_opt.step()

        h = h.detach()
        pi = sample_action(self.actor(h), std, c.std_clip)
        actor_loss = -self.critic(h, pi).amin(dim=1).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        soft_update(self.critic, self.critic_target, c.critic_tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q": q.detach().mean(),
                "target_q": target_q.mean(), "batch_reward": reward.mean()}


def metrics_to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Synchronise and convert an update's metrics (call rarely: it waits for the GPU)."""
    return {k: round(float(v), 5) for k, v in metrics.items()}
