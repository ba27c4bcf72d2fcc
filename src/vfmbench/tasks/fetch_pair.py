"""A task pair for Visual Alignment Testing (paper 001 §III-C, Fig. 3): ``fetch_reach_red`` and
``fetch_reach_blue``.

Both tasks show the same scene: the Fetch reach environment with a red and a blue 5 cm block on
the table, placed from the episode seed alone (uniformly within 15 cm of the gripper's start,
as Fetch places its object, at least 12 cm apart, and at least 8 cm off the strip of table that
the gripper hides from the camera at reset). Only the motor signal differs: ``fetch_reach_red`` moves the
gripper to a point 3 cm above the red block, ``fetch_reach_blue`` above the blue one. For the same seed the
two tasks render identical frames, so they share one visual distribution, as the paper's mug
and spam reaching tasks do.

The blocks are visual-only scene geoms, placed and drawn by the ``distractor`` shift's
machinery (`DistractorShift`): the gripper hovers above its block and never touches either,
so the choice of block is the whole task. Fetch's goal sphere is hidden, so nothing in the
frame says which block is the target. Success is the environment's ``is_success`` (the
gripper within 5 cm of the target point); the blocks are at least 12 cm apart, so hovering
over the other block is never a success. The scripted expert is Fetch reach's (straight to the
goal); privileged state is the reach observation, the red and the blue block's centres and the
goal (19 numbers). In ground-truth masks the target block is the ``goal`` group, and the other
block counts as a distractor.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vfmbench.tasks._registry import TaskSpec, register_task
from vfmbench.tasks.base import TaskConfig
from vfmbench.tasks.experts.fetch import reach_expert
from vfmbench.tasks.fetch import FetchTask
from vfmbench.tasks.shifts import KeepOut, Workspace
from vfmbench.tasks.shifts.distractor import COLORS, DistractorOptions, DistractorShift

BLOCK_HALF = 0.025  # m: half the side of a block, as Fetch's object
BLOCK_RANGE = 0.15  # m: blocks lie within this of the gripper's start in x and y (Fetch's obj_range)
BLOCK_GAP = 0.12  # m: least distance between the block centres
HOVER = 0.03  # m: the target point lies this far above the top of its block
# The gripper at its start hides a strip of table behind it (away from the camera, towards -x), up
# to `_SHADOW` behind it; blocks keep the placer's clearance (plus their own radius) from that strip.
_SHADOW = np.array([0.12, 0.0])
COLOURS = ("red", "blue")  # block 0 is red, block 1 blue
_PLACER = "fetch_pair_blocks"  # names the placement's random stream (the same for both tasks)


class FetchPairTask(FetchTask):
    """Fetch reach with a red and a blue block on the table; the gripper goes above block
    `target` (0 red, 1 blue). See the module docstring."""

    def __init__(self, name: str, target: int, config: TaskConfig):
        super().__init__(name, "reach", config, reach_expert, default_proprio=True)
        import mujoco

        self.target = target
        self.goal_pole = False  # the target is a block on the table, not a point in the air
        self._target_site = self._model.site("target0").id
        self._model.site_rgba[self._target_site, 3] = 0.0  # hide Fetch's goal sphere
        grip0 = np.asarray(self._env.initial_gripper_xpos[:2], float)
        table = self._view.layout.workspace
        assert table is not None
        area = Workspace(low=tuple(grip0 - BLOCK_RANGE), high=tuple(grip0 + BLOCK_RANGE), z=table.z)
        # the footprint radius of a box is half its diagonal; the gap between blocks is a clearance
        radius = BLOCK_HALF * np.sqrt(2)
        options = DistractorOptions(count=2, shapes=("box",), colors=("red",), size=(BLOCK_HALF, BLOCK_HALF),
                                    clearance=BLOCK_GAP - 2 * radius)
        self._placer = DistractorShift(_PLACER, options, self._model,
                                       dataclasses.replace(self._view.layout, workspace=area), config.resolution)
        self._shadow = np.array([[[*grip0, table.z], [*(grip0 - _SHADOW), table.z]]])
        self._site_type = mujoco.mjtObj.mjOBJ_SITE
        self.blocks = np.zeros((2, 3))  # block centres (red, blue), metres
        self.state_dim += 6

    def _reset_env(self, seed: int) -> dict[str, np.ndarray]:
        """Reset Fetch reach, place the blocks from `seed` alone and make the target point the goal."""
        self._env.reset(seed=seed)
        self._placer.on_reset(seed, KeepOut(self._shadow, np.zeros(1)))
        blue = COLORS["blue"]
        self._placer.distractors[1] = dataclasses.replace(self._placer.distractors[1], rgb=blue)
        self.blocks = np.array([d.pos for d in self._placer.distractors])
        self._env.goal = self.blocks[self.target] + np.array([0.0, 0.0, BLOCK_HALF + HOVER])
        return self._env._get_obs()

    def _keep_out(self) -> KeepOut:
        """Fetch reach's keep-out for distractor shifts, plus both blocks."""
        base = super()._keep_out()
        blocks = np.stack([self.blocks, self.blocks], axis=1)
        radius = np.full(2, BLOCK_HALF * np.sqrt(2))
        return KeepOut(np.concatenate([base.segments, blocks]), np.concatenate([base.radius, radius]))

    def _decorate_scene(self, scene: Any) -> None:
        """Draw both blocks; the target block is tagged as the goal site for masks."""
        first = scene.ngeom
        self._placer.decorate_scene(scene, 0)
        geom = scene.geoms[first + self.target]
        geom.objtype, geom.objid = self._site_type, self._target_site

    def _state(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([raw["observation"], self.blocks.ravel(), raw["desired_goal"]]).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "target_block": COLOURS[self.target], "blocks": list(COLOURS)}


def _factory(name: str, target: int):
    def make(config: TaskConfig) -> FetchPairTask:
        return FetchPairTask(name, target, config)

    return make


for _target, _colour in enumerate(COLOURS):
    register_task(
        TaskSpec(
            name=f"fetch_reach_{_colour}",
            family="fetch",
            description=f"a red and a blue block on the table: move the gripper above the {_colour} one "
                        "(a Visual Alignment Testing pair: same frames, different actions)",
            factory=_factory(f"fetch_reach_{_colour}", _target),
            action_dim=4,
            max_episode_steps=50,
            default_proprio=True,
            reward="sparse|dense",
            mask_groups=("gripper", "goal", "arm"),
        )
    )
