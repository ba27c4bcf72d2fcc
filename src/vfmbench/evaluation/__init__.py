"""Policy rollouts on held-out seeds: success rates and videos."""

from vfmbench.evaluation.rollout import EVAL_SEED_BASE, EvalResult, evaluate

__all__ = ["EVAL_SEED_BASE", "EvalResult", "evaluate"]
