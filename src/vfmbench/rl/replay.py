"""A replay buffer for online RL: single frames stored once, stacks and n-step returns built when sampling.

Layout: a ring of `capacity` slots, one per observation. Slot ``s`` holds the observation (one
uint8 frame ``[H, W, 3]``, or a float32 state vector) and, once the agent has acted on it, the
transition leaving it: the action, the reward and whether the next state is terminal. An episode
of ``T`` steps takes ``T + 1`` slots. A frame stack is never stored: `sample` gathers the last
`frame_stack` frames of the episode (the first frame repeated before the episode's start, as the
``frame_stack`` wrapper and DrQ-v2 do), so memory is one frame per environment step.

n-step targets are exact at episode boundaries: the return sums up to `nstep` rewards of the
same episode, stopping early at a terminal transition (discount 0: nothing is bootstrapped) or
at the episode's last observation (a time limit, or the newest observation of the running
episode: bootstrapped from there with ``discount ** m`` for the ``m`` rewards summed). A sample
never reads a slot that the ring has overwritten: starts whose frame stack reaches into
overwritten slots are drawn again.

Memory is bounded by `capacity` (`replay_bytes`); arrays are allocated lazily by the OS as slots
fill. `save` writes only the slots added since the previous save (chunks of safetensors and an
atomically replaced ``index.json``), so saving with every checkpoint costs time proportional to
the new data; `load` restores the buffer as it was at a given number of added slots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfmbench.utils.errors import ConfigError, VfmbenchError
from vfmbench.utils.io import read_json, write_json_atomic

INDEX = "index.json"
_FIELDS = ("obs", "action", "reward", "terminal", "has_next", "episode", "t")


@dataclass
class Batch:
    """A sampled batch (NumPy). ``obs`` / ``next_obs``: uint8 ``[B, H, W, 3k]`` stacked frames,
    oldest first (a transposed view of contiguous ``[B, 3k, H, W]`` data), or float32 ``[B, S]`` states; ``action`` float32 ``[B, A]``; ``reward`` the
    n-step discounted return float32 ``[B, 1]``; ``discount`` float32 ``[B, 1]``: ``gamma ** m``
    for the ``m`` rewards summed, 0 after a terminal transition."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    discount: np.ndarray
    next_obs: np.ndarray


class ReplayBuffer:
    """Ring buffer of observations and transitions; see the module docstring.

    obs_shape: one observation, ``(H, W, 3)`` uint8 frames (stacked by `frame_stack` when
    sampled) or ``(S,)`` float32 states (``frame_stack`` 1). Raises `ConfigError` for a capacity
    too small for one n-step stack.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_dim: int, *, frame_stack: int = 1,
                 nstep: int = 1, discount: float = 0.99):
        if capacity <= nstep + frame_stack:
            raise ConfigError(f"replay capacity {capacity} must exceed nstep + frame_stack ({nstep + frame_stack})")
        self.capacity, self.obs_shape, self.action_dim = capacity, tuple(obs_shape), action_dim
        self.frame_stack, self.nstep, self.discount = frame_stack, nstep, discount
        self.pixels = len(self.obs_shape) == 3
        if not self.pixels and frame_stack != 1:
            raise ConfigError("state observations are not frame-stacked: use frame_stack 1")
        # pixels are stored channel first ([C, H, W]), so a stack of frames is one gather of
        # contiguous blocks (about 20x faster than assembling [H, W, 3k] from [H, W, 3] frames)
        stored = (self.obs_shape[2], *self.obs_shape[:2]) if self.pixels else self.obs_shape
        self.obs = np.zeros((capacity, *stored), np.uint8 if self.pixels else np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminal = np.zeros(capacity, bool)
        self.has_next = np.zeros(capacity, bool)  # the transition leaving this slot is stored
        self.episode = np.full(capacity, -1, np.int64)
        self.t = np.zeros(capacity, np.int32)  # step of this observation within its episode
        self.total = 0  # slots ever written (absolute index of the next one)
        self.episodes = 0  # episodes started
        self._saved_upto = 0  # slots already in the save folder
        self._open = False  # an episode is running (its last slot awaits a transition)

    @property
    def has_transitions(self) -> bool:
        """Whether a transition can be sampled (an episode has at least one step)."""
        return self.total > self.episodes

    @property
    def size(self) -> int:
        """Observations held (at most `capacity`)."""
        return min(self.total, self.capacity)

    # -- writing --------------------------------------------------------------------------------
    def _write_obs(self, obs: np.ndarray, t: int) -> None:
        s = self.total % self.capacity
        if obs.shape != self.obs_shape:
            raise ValueError(f"replay buffer holds observations of shape {self.obs_shape}, got {obs.shape}")
        self.obs[s] = obs.transpose(2, 0, 1) if self.pixels else obs
        self.has_next[s] = False
        self.terminal[s] = False
        self.reward[s] = 0.0
        self.episode[s] = self.episodes - 1
        self.t[s] = t
        self.total += 1

    def start_episode(self, obs: np.ndarray) -> None:
        """The first observation of a new episode (a running one simply ends: a time limit)."""
        self.episodes += 1
        self._write_obs(obs, 0)
        self._open = True

    def add(self, action: np.ndarray, reward: float, terminal: bool, next_obs: np.ndarray) -> None:
        """The transition from the newest observation: `action`, `reward`, whether `next_obs` is
        terminal (no value beyond it; a time limit is not terminal), and `next_obs` itself."""
        if not self._open:
            raise RuntimeError("replay buffer: call start_episode before add")
        s = (self.total - 1) % self.capacity
        self.action[s] = action
        self.reward[s] = reward
        self.terminal[s] = terminal
        self.has_next[s] = True
        self._write_obs(next_obs, int(self.t[s]) + 1)
        self._open = not terminal

    # -- sampling -------------------------------------------------------------------------------
    def _stack(self, slots: np.ndarray) -> np.ndarray:
        """Stacked observations of absolute slots `slots` ``[B]``."""
        if not self.pixels:
            return self.obs[slots % self.capacity]
        k = self.frame_stack
        back = np.minimum(np.arange(k - 1, -1, -1)[None, :], self.t[slots % self.capacity][:, None])  # [B, k]
        frames = self.obs[(slots[:, None] - back) % self.capacity]  # [B, k, 3, H, W], contiguous
        b, _, c, h, w = frames.shape
        return frames.reshape(b, k * c, h, w).transpose(0, 2, 3, 1)  # a view [B, H, W, 3k]

    def _valid_starts(self, a: np.ndarray) -> np.ndarray:
        lo = max(0, self.total - self.capacity)
        s = a % self.capacity
        reach = a - np.minimum(self.t[s], self.frame_stack - 1)
        return self.has_next[s] & (reach >= lo) & (a < self.total - 1)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """`batch_size` transitions drawn uniformly from the valid starts; see the module docstring.
        Raises `RuntimeError` if the buffer holds no transition yet."""
        lo = max(0, self.total - self.capacity)
        if not self.has_transitions:
            raise RuntimeError("replay buffer: no transition to sample yet")
        a = rng.integers(lo, self.total - 1, batch_size)
        for _ in range(1000):
            bad = ~self._valid_starts(a)
            if not bad.any():
                break
            a[bad] = rng.integers(lo, self.total - 1, int(bad.sum()))
        else:
            raise RuntimeError("replay buffer: could not draw valid transitions (is it nearly empty?)")
        n = self.nstep
        steps = a[:, None] + np.arange(n)[None, :]  # [B, n] absolute slots of the summed transitions
        steps = np.minimum(steps, self.total - 1)
        ss = steps % self.capacity
        # transition i is taken if transitions 0..i-1 were taken, none was terminal and slot i has one
        has = self.has_next[ss]
        term = self.terminal[ss]
        alive = np.ones_like(has)
        alive[:, 1:] = np.cumprod(has[:, 1:] & ~term[:, :-1], axis=1).astype(bool) & has[:, :1]
        alive &= has
        gammas = self.discount ** np.arange(n)
        reward = (self.reward[ss] * alive * gammas).sum(1)
        m = alive.sum(1)  # rewards summed (>= 1)
        ended = (term & alive).any(1)
        discount = np.where(ended, 0.0, self.discount ** m)
        next_slots = a + m
        return Batch(obs=self._stack(a), action=self.action[a % self.capacity], reward=reward[:, None].astype(np.float32),
                     discount=discount[:, None].astype(np.float32), next_obs=self._stack(next_slots))

    # -- saving ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "obs_shape": list(self.obs_shape), "layout": "chw" if self.pixels else "flat",
                "action_dim": self.action_dim,
                "frame_stack": self.frame_stack, "nstep": self.nstep, "discount": self.discount}

    def save(self, folder: str | Path, keep_from: int | None = None) -> int:
        """Write the slots added since the last save to `folder` (one chunk, plus the slot before it,
        whose transition may have been added since) and replace its index atomically. Chunks all of
        whose slots a buffer restored at `keep_from` added slots would no longer hold are deleted
        (default: the current count). Returns the number of slots saved in total."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        index = self._read_index(folder) if (folder / INDEX).exists() else {"buffer": self.describe(), "chunks": []}
        if index["buffer"] != self.describe():
            raise VfmbenchError(f"{folder / INDEX} belongs to another replay buffer ({index['buffer']}); "
                                "remove the folder or use another run folder")
        start = max(0, self._saved_upto - 1, self.total - self.capacity)
        if self.total > start:
            slots = np.arange(start, self.total) % self.capacity
            name = f"chunk_{start:012d}_{self.total:012d}.safetensors"
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            save_file({f: np.ascontiguousarray(getattr(self, f)[slots]) for f in _FIELDS}, str(tmp))
            os.replace(tmp, folder / name)
            index["chunks"] = [c for c in index["chunks"] if c["end"] <= self.total or c["start"] >= self.total]
            index["chunks"].append({"start": start, "end": self.total, "file": name})
        floor = (self.total if keep_from is None else keep_from) - self.capacity
        stale = [c for c in index["chunks"] if c["end"] <= floor]
        index["chunks"] = [c for c in index["chunks"] if c not in stale]
        index.update(total=self.total, episodes=self.episodes)
        write_json_atomic(folder / INDEX, index)
        for c in stale:
            (folder / c["file"]).unlink(missing_ok=True)
        self._saved_upto = self.total
        return self.total

    @staticmethod
    def _read_index(folder: Path) -> dict[str, Any]:
        try:
            index = read_json(folder / INDEX)
            index["buffer"], index["chunks"]  # noqa: B018 - presence check
            return index
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VfmbenchError(f"{folder / INDEX} is unreadable ({exc})") from None

    def load(self, folder: str | Path, upto: int, episodes: int) -> None:
        """Restore the buffer as it was after `upto` added slots and `episodes` started episodes
        (the values a checkpoint recorded). Raises `VfmbenchError` naming the missing or damaged
        file if those slots cannot all be restored."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        index = self._read_index(folder)
        if index["buffer"] != self.describe():
            raise VfmbenchError(f"{folder / INDEX} holds a buffer of other settings ({index['buffer']}, "
                                f"the run needs {self.describe()})")
        lo = max(0, upto - self.capacity)
        covered = lo
        for c in sorted(index["chunks"], key=lambda c: c["start"]):
            if c["end"] <= lo or c["start"] >= upto:
                continue
            if c["start"] > covered:
                break
            path = folder / c["file"]
            try:
                data = load_file(str(path))
            except Exception as exc:  # missing or truncated file
                raise VfmbenchError(f"{path} is missing or damaged ({exc})") from None
            start, stop = max(c["start"], lo), min(c["end"], upto)
            slots = np.arange(start, stop) % self.capacity
            for f in _FIELDS:
                getattr(self, f)[slots] = data[f][start - c["start"]: stop - c["start"]]
            covered = max(covered, stop)
        if covered < upto:
            raise VfmbenchError(f"{folder} holds replay slots up to {covered}, the checkpoint needs {upto} "
                                f"(the chunk after slot {covered} is missing)")
        self.total, self.episodes, self._saved_upto = upto, episodes, upto
        if upto:
            self.has_next[(upto - 1) % self.capacity] = False
        self._open = False
