"""One generic trainer, checkpoints (safetensors + JSON) and training records; the ``frozen_run``
encoder entry (a trained run's encoder, frozen) is registered here."""

from vfmbench.training.trainer import (
    TRAIN_SCHEMA,
    EvalPoint,
    RunSpec,
    TrainConfig,
    Trainer,
    TrainRecord,
    build_agent,
    load_agent,
    read_run_config,
    read_train_record,
    resolve_device,
)
from vfmbench.training.frozen_run import FROZEN_RUN, FrozenRunEncoder, encoder_digest, frozen_run_options

__all__ = ["FROZEN_RUN", "TRAIN_SCHEMA", "FrozenRunEncoder", "encoder_digest", "frozen_run_options", "EvalPoint", "RunSpec", "TrainConfig", "TrainRecord", "Trainer", "build_agent", "load_agent",
           "read_run_config", "read_train_record", "resolve_device"]
