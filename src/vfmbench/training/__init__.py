"""One generic trainer, checkpoints (safetensors + JSON) and the agent bundle."""

from vfmbench.training.agent import Agent, Normalizer
from vfmbench.training.trainer import RunSpec, TrainConfig, Trainer, build_agent, load_agent

__all__ = ["Agent", "Normalizer", "RunSpec", "TrainConfig", "Trainer", "build_agent", "load_agent"]
