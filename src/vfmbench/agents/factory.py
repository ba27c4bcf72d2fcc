"""Build an untrained agent from names and a task's spaces."""

from __future__ import annotations

from typing import Any

import torch

from vfmbench.agents.agent import Agent
from vfmbench.encoders import create_encoder, get_encoder_spec
from vfmbench.encoders.augment import AugmentedEncoder, AugmentKind, make_augmentation
from vfmbench.encoders.base import Encoder
from vfmbench.encoders.stack import FrameStackEncoder
from vfmbench.policies import PolicyDims, make_policy, method_config
from vfmbench.policies.base import MethodConfig
from vfmbench.tasks import TaskSpaces
from vfmbench.utils.errors import ConfigError


def make_agent(
    encoder: str,
    method: str,
    spaces: TaskSpaces,
    *,
    pretrained: bool | None = None,
    encoder_options: dict[str, Any] | None = None,
    method_config_data: dict[str, Any] | MethodConfig | None = None,
    augment: AugmentKind = "shift",
    shift_pad: int = 4,
    crop_size: int = 76,
) -> Agent:
    """The untrained agent: encoder `encoder` (registry name, with `encoder_options`), a policy of
    `method` (config from `method_config_data`) sized from `spaces`.

    Encoders whose embedding size depends on the task (``embed_dim`` None in the registry, e.g.
    `state`) get the width of their input vector from `spaces`. Trainable encoders are wrapped in
    their training augmentation (`augment`: random shift by `shift_pad` pixels, random crop of
    `crop_size`, or none). Frames stacked by the ``frame_stack`` wrapper (``3k`` channels) are
    encoded one by one (`FrameStackEncoder`). Raises `ConfigError` for a goal-conditioned method on a task without
    goals, `UnknownNameError` for unknown names.
    """
    mcfg = (method_config_data if isinstance(method_config_data, MethodConfig)
            else method_config(method, method_config_data, source="method_config"))
    if mcfg.goal_conditioned and not spaces.goal_conditioned:
        raise ConfigError(
            "method_config.goal_conditioned is true but the task has no goal images; "
            "collect the dataset with task_config.goal_conditioned=true"
        )
    spec = get_encoder_spec(encoder)
    input_dim = spaces.vector_dim(spec.input_key) if spec.embed_dim is None else None
    enc = create_encoder(encoder, pretrained=pretrained, input_dim=input_dim, **(encoder_options or {}))
    if enc.input_key == "pixels" and spaces.image_shape is not None and spaces.image_shape[2] != 3:
        channels = spaces.image_shape[2]
        if channels % 3:
            raise ConfigError(f"the task's frames have {channels} channels, not RGB or stacked RGB frames")
        enc = FrameStackEncoder(enc, channels // 3)  # the frame_stack wrapper's stacked frames
    if enc.trainable:
        _check_input_size(enc, spaces, augment, crop_size)
        enc = AugmentedEncoder(enc, make_augmentation(augment, shift_pad, crop_size))
    dims = PolicyDims(feature_dim=enc.embed_dim, proprio_dim=spaces.proprio_dim, action_dim=spaces.action_dim,
                      goal_conditioned=mcfg.goal_conditioned)
    return Agent(enc, make_policy(method, mcfg, dims), spaces.proprio_dim)


def _check_input_size(encoder: Encoder, spaces: TaskSpaces, augment: AugmentKind, crop_size: int) -> None:
    """A trainable encoder must accept the frames it will see (after a crop): one forward pass on a
    blank frame, so that a too-small resolution fails now with a clear error, not mid-training."""
    if spaces.image_shape is None or encoder.input_key != "pixels":
        return
    h, w, c = spaces.image_shape
    if augment == "crop":
        if crop_size > min(h, w):
            raise ConfigError(f"train.crop_size {crop_size} is larger than the task's {h}x{w} frames; "
                              f"set it to at most {min(h, w)} or use train.augment=shift")
        h = w = crop_size
    mode = encoder.training
    try:
        with torch.no_grad():
            encoder.eval()(torch.zeros(1, h, w, c, dtype=torch.uint8))
    except RuntimeError as exc:
        raise ConfigError(f"encoder {encoder.name!r} cannot encode {h}x{w} frames ({str(exc).splitlines()[0]}); "
                          "collect the data at a higher task_config.resolution") from None
    finally:
        encoder.train(mode)
