"""One generic trainer, checkpoints (safetensors + JSON) and training records."""

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

__all__ = ["TRAIN_SCHEMA", "EvalPoint", "RunSpec", "TrainConfig", "TrainRecord", "Trainer", "build_agent", "load_agent",
           "read_run_config", "read_train_record", "resolve_device"]
