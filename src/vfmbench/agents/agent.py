"""An agent = encoder + feature/proprioception normalisers + policy, plus the state of acting.

The policy contract (`vfmbench.policies.base`) is interpreted here and only here at run time:
the agent keeps the last `policy.history` steps of normalised features and proprioception
(the first observation of an episode repeated to fill it, as training windows clamp to the
episode start), encodes the goal image once per episode, and executes the ``K`` actions a
policy returns (an action chunk) before asking it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from vfmbench.encoders.base import Encoder
from vfmbench.policies.base import Policy


class Normalizer(nn.Module):
    """``(x - mean) / std`` with statistics fitted on training data; identity until fitted.

    The per-dimension std has a floor: `floor_ratio` times the mean std over all dimensions (and
    `eps` absolutely). A nearly constant dimension (a frozen encoder's feature that barely varies
    on the training frames) is then scaled like a typical one, not divided by ~0, so a change of
    it under a shift cannot dominate the policy's input by orders of magnitude. Without the floor,
    features with training std 1e-6 reached 1e5 under video_hard. (robomimic and LeRobot only add
    a tiny epsilon; Diffusion Policy's normaliser leaves constant dimensions unscaled. The floor
    relative to the typical scale keeps every dimension within 1/floor_ratio of it.)
    """

    def __init__(self, dim: int, floor_ratio: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.floor_ratio, self.eps = floor_ratio, eps
        self.mean = nn.Buffer(torch.zeros(dim))
        self.std = nn.Buffer(torch.ones(dim))

    def fit(self, x: np.ndarray | torch.Tensor) -> "Normalizer":
        """Fit mean and (floored) std to ``x [N, D]``; one sample leaves the std at 1."""
        if self.mean.shape[0] == 0:
            return self
        x = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, self.mean.shape[0])
        if len(x):
            self.mean.copy_(x.mean(0))
            if len(x) > 1:
                std = x.std(0, unbiased=False)
                self.std.copy_(std.clamp_min(max(self.eps, self.floor_ratio * float(std.mean()))))
            else:
                self.std.copy_(torch.ones_like(self.std))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Agent(nn.Module):
    """Turns raw observations into actions.

    `encode` maps raw inputs (uint8 images ``[B, H, W, 3]`` or vectors ``[B, S]``) to normalised
    features ``[B, D]``. `reset(B)` starts ``B`` episodes; `act(obs)` takes one batched
    observation (NumPy arrays ``[B, ...]`` under the task's observation keys) and returns the
    actions ``[B, A]`` (float32, NumPy) to execute now. The agent acts on the device its
    parameters live on.
    """

    def __init__(self, encoder: Encoder, policy: Policy, proprio_dim: int):
        super().__init__()
        self.encoder = encoder
        self.policy = policy
        self.feature_norm = Normalizer(encoder.embed_dim)
        self.proprio_norm = Normalizer(proprio_dim)
        self._features: torch.Tensor | None = None  # [B, history, D]
        self._proprio: torch.Tensor | None = None  # [B, history, P]
        self._goal: torch.Tensor | None = None  # [B, D]
        self._queue: torch.Tensor | None = None  # [B, K, A] on the CPU
        self._next = 0
        self._generators: list[torch.Generator] | None = None  # one per episode, for sampling policies
        self.act_options: dict = {}  # acting options a loaded run was given (`load_agent`), recorded by evaluations

    @property
    def input_key(self) -> str:
        return self.encoder.input_key

    @property
    def device(self) -> torch.device:
        return self.feature_norm.mean.device

    @property
    def observation_keys(self) -> tuple[str, ...]:
        """The observation entries `act` reads."""
        keys = (self.input_key, "proprio")
        return (*keys, "goal_" + self.input_key) if self.policy.dims.goal_conditioned else keys

    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        return self.feature_norm(self.encoder(raw).float())

    def persistent_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: everything but a frozen encoder (rebuilt from the registry)."""
        state = self.state_dict()
        if not self.encoder.trainable:
            state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
        return state

    # -- acting -------------------------------------------------------------------------------
    def reset(self, batch_size: int, seeds: Sequence[int] | None = None) -> None:
        """Start `batch_size` new episodes: clear the history, the goal and the action queue.

        `seeds` (one per episode) seed the noise of policies that sample (Diffusion Policy), so an
        episode's actions depend on its seed alone: evaluating the same seeds twice, or under a
        shift the policy does not see, gives the same actions. None: torch's global generator."""
        if seeds is not None and len(seeds) != batch_size:
            raise ValueError(f"reset: {len(seeds)} seeds for {batch_size} episodes")
        self.policy.reset(batch_size)
        self._features = self._proprio = self._goal = self._queue = None
        self._next = 0
        self._generators = None if seeds is None else [torch.Generator().manual_seed(int(s)) for s in seeds]

    def _tensor(self, obs: Mapping[str, np.ndarray], key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(obs[key])).to(self.device)

    @torch.inference_mode()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Actions ``[B, A]`` for the batched observation `obs` (the next of each episode)."""
        features = self.encode(self._tensor(obs, self.input_key))
        proprio = self.proprio_norm(self._tensor(obs, "proprio").float())
        if self._features is None:  # first step: the history is the first observation repeated
            h = self.policy.history
            self._features = features[:, None].repeat(1, h, 1)
            self._proprio = proprio[:, None].repeat(1, h, 1)
            if self.policy.dims.goal_conditioned:
                self._goal = self.encode(self._tensor(obs, "goal_" + self.input_key))
        else:
            assert self._proprio is not None
            self._features = torch.cat([self._features[:, 1:], features[:, None]], 1)
            self._proprio = torch.cat([self._proprio[:, 1:], proprio[:, None]], 1)
        if self._queue is None or self._next >= self._queue.shape[1]:
            inputs = {"features": self._features, "proprio": self._proprio}
            if self._goal is not None:
                inputs["goal"] = self._goal
            self._queue = self.policy.act(inputs, self._generators).float().cpu()
            self._next = 0
        actions = self._queue[:, self._next].numpy()
        self._next += 1
        return actions
