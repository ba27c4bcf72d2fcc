"""Experiment grids: the demo (encoders x seeds on one task) and its results records."""

from vfmbench.experiments.demo import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
