"""`state`: the privileged-state pseudo-encoder, the upper-bound row of every table."""

from __future__ import annotations

import torch

from vfmbench.encoders.base import Encoder


class StateEncoder(Encoder):
    """Identity on the task's privileged state vector ``[B, S]`` (object/gripper poses, goal)."""

    family = "state"
    input_key = "state"

    def __init__(self, input_dim: int = 0):
        super().__init__()
        self.name, self.trainable, self.pretrained, self.weights_id = "state", False, False, "none"
        self.embed_dim = input_dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return images.float()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def spatial_features(self, images: torch.Tensor) -> torch.Tensor:
        raise TypeError("the state encoder has no spatial features")
