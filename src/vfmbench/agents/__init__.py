"""Agents: an encoder, feature/proprioception normalisers and a policy, with the runtime state
of acting (observation history, action queue).

    agent = make_agent("e2e_cnn", "dp_conv", task.spaces)
    agent.reset(n_envs)
    actions = agent.act(observations)   # batched NumPy observations -> [n_envs, A]

The trainer trains an agent's networks; evaluation and (later) online RL call `reset` / `act`.
"""

from vfmbench.agents.agent import Agent, Normalizer
from vfmbench.agents.factory import make_agent

__all__ = ["Agent", "Normalizer", "make_agent"]
