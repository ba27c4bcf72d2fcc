"""Scripted Fetch experts. Stateless: each action is a function of the current privileged state,
so an expert can take over from any state (used for goal images and for relabelling).

Actions are Fetch's: a gripper displacement in units of 5 cm per step (clipped to [-1, 1]) and
a finger command (+1 open, -1 close).
"""

from __future__ import annotations

import numpy as np

_STEP = 0.05  # metres per unit action


def _move(grip: np.ndarray, target: np.ndarray, gain: float = 1.0) -> np.ndarray:
    return np.clip(gain * (target - grip) / _STEP, -1.0, 1.0)


def reach_expert(raw: dict[str, np.ndarray]) -> np.ndarray:
    grip = raw["observation"][:3]
    return np.r_[_move(grip, raw["desired_goal"]), 0.0]


def push_expert(raw: dict[str, np.ndarray]) -> np.ndarray:
    """Go behind the block (seen from the goal) above table height, descend, push along the line."""
    o = raw["observation"]
    grip, obj, goal = o[0:3], o[3:6], raw["desired_goal"]
    to_goal = goal[:2] - obj[:2]
    dist = float(np.linalg.norm(to_goal))
    if dist < 0.015:
        return np.r_[0.0, 0.0, 0.0, -1.0]
    u = to_goal / dist
    rel = grip[:2] - obj[:2]
    along = float(rel @ u)
    lateral = rel - along * u
    behind = obj[:2] - 0.06 * u
    low_z = obj[2] - 0.005
    hover_z = obj[2] + 0.06
    aligned = along < -0.035 and np.linalg.norm(lateral) < 0.02
    if aligned and grip[2] < obj[2] + 0.03:
        # push: drive towards the goal, correct sideways drift, stay at block height
        # slow down near the goal: the block slides on after contact ends
        speed = float(np.clip(0.6 * dist / _STEP, 0.15, 0.6))
        xy = u * speed - lateral / _STEP
        return np.r_[np.clip(xy, -1, 1), np.clip((low_z - grip[2]) / _STEP, -1, 1), -1.0]
    # get behind the block: travel at hover height, descend once above the approach point
    if np.linalg.norm(grip[:2] - behind) > 0.015:
        near_block = np.linalg.norm(rel) < 0.08
        z = hover_z if (near_block or grip[2] > obj[2] + 0.03) else grip[2]
        target = np.r_[behind, max(z, hover_z if near_block else z)]
        # rise before moving sideways when close to the block
        if near_block and grip[2] < hover_z - 0.02:
            target = np.r_[grip[:2] - 0.3 * (obj[:2] - grip[:2]), hover_z]
        return np.r_[_move(grip, target), -1.0]
    return np.r_[_move(grip, np.r_[behind, low_z]), -1.0]


def pick_and_place_expert(raw: dict[str, np.ndarray]) -> np.ndarray:
    """Open above the block, descend, close, carry to the goal."""
    o = raw["observation"]
    grip, obj, fingers, goal = o[0:3], o[3:6], o[9:11], raw["desired_goal"]
    width = float(fingers.sum())
    dxy = float(np.linalg.norm(grip[:2] - obj[:2]))
    dz = grip[2] - obj[2]
    holding = dxy < 0.02 and abs(dz) < 0.02 and width < 0.054
    if holding:
        return np.r_[_move(grip, goal + (grip - obj)), -1.0]
    if dxy > 0.01:
        if dz < 0.03 and dxy > 0.02:  # too low to travel: rise first
            return np.r_[_move(grip, np.r_[grip[:2], obj[2] + 0.06]), 1.0]
        return np.r_[_move(grip, np.r_[obj[:2], obj[2] + 0.05]), 1.0]
    if dz > 0.005:
        return np.r_[_move(grip, obj), 1.0 if width < 0.09 else 1.0]
    return np.r_[_move(grip, obj), -1.0]
