"""DeepMind Control tasks: dm_control parity, seeding under every shift, masks, DMC-GB's own files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from vfmbench.tasks import TASKS, make_task
from vfmbench.tasks.shifts.color import load_color_file
from vfmbench.tasks.shifts.render import Label
from vfmbench.tasks.shifts.videos import load_video
from vfmbench.utils.errors import ConfigError

pytestmark = pytest.mark.sim

DMCGB = Path(__file__).parent / "data" / "dmcgb"
DMC_TASKS = [n for n in TASKS.names() if n.startswith("dmc_")]
SHIFT_CONFIGS = {
    "none": {},
    "color_easy": {"colors": str(DMCGB / "color_easy.pt")},
    "color_hard": {},  # the built-in generator
    "video_easy": {"sources": [str(DMCGB / "video_easy")]},
    "video_hard": {"sources": [str(DMCGB / "video_hard")]},
}


def _frames(task, seed: int, steps: int, actions: np.ndarray) -> np.ndarray:
    frames = [task.reset(seed)["pixels"]]
    for a in actions[:steps]:
        frames.append(task.step(a).observation["pixels"])
    return np.stack(frames)


def test_registry_lists_the_papers_tasks():
    assert DMC_TASKS == ["dmc_walker_walk", "dmc_walker_stand", "dmc_cartpole_swingup", "dmc_cartpole_balance",
                         "dmc_cheetah_run", "dmc_hopper_stand", "dmc_finger_spin", "dmc_ball_in_cup_catch",
                         "dmc_quadruped_walk", "dmc_reacher_easy"]
    dims = {n: TASKS.get(n).action_dim for n in DMC_TASKS}
    assert dims["dmc_walker_walk"] == 6 and dims["dmc_quadruped_walk"] == 12 and dims["dmc_cartpole_swingup"] == 1
    assert all(TASKS.get(n).max_episode_steps == 500 for n in DMC_TASKS)  # 1,000 env steps at action repeat 2


def test_rewards_and_episode_end_match_dm_control_called_directly():
    from dm_control import suite

    actions = np.random.default_rng(0).uniform(-1, 1, (150, 1))
    with make_task("dmc_cartpole_balance", resolution=16) as task:
        task.reset(7)
        results = [task.step(a) for a in actions]
        # fast-forward the simulator (no rendering) to the last two agent steps of the episode
        for _ in range(1000 - 2 * len(actions) - 4):
            task._env.step(actions[0])
        last = [task.step(actions[0]), task.step(actions[0])]
    env = suite.load("cartpole", "balance", task_kwargs={"random": 7})
    env.reset()
    theirs = [env.step(a).reward + env.step(a).reward for a in actions]  # action repeat 2
    np.testing.assert_allclose([r.reward for r in results], theirs, rtol=0, atol=1e-12)
    assert not any(r.done for r in results) and [r.done for r in last] == [False, True]
    assert 100 < sum(theirs) < 300  # a random policy holds the pole up for a while, then drops it
    assert not any(r.success for r in results)  # balance defines no success


def test_pixels_are_dm_controls_own_render_from_drqv2_camera():
    with make_task("dmc_quadruped_walk") as task:
        obs = task.reset(3)
        description = task.describe()
        assert description["camera"] == 2 and description["action_repeat"] == 2
        assert description["versions"]["dm_control"] == "1.0.34"
        reference = task._physics.render(84, 84, camera_id=2)  # DrQ-v2: quadruped camera 2
        task._physics.free()
    assert np.array_equal(obs["pixels"], reference)


@pytest.mark.parametrize("shift", list(SHIFT_CONFIGS))
def test_same_seed_same_frames_under_every_shift(shift):
    actions = np.random.default_rng(1).uniform(-1, 1, (4, 6))
    with make_task("dmc_walker_walk", shift=shift, shift_options=SHIFT_CONFIGS[shift]) as task:
        a = _frames(task, 5, 4, actions)
        _frames(task, 6, 2, actions)  # another episode in between
        b = _frames(task, 5, 4, actions)
        c = _frames(task, 6, 0, actions)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], c[0])
    if shift != "none":
        with make_task("dmc_walker_walk") as clean:
            assert not np.array_equal(a[0], clean.reset(5)["pixels"]), "the shift changed nothing"


def test_masks_cover_each_tasks_bodies_at_84():
    for name in DMC_TASKS:
        with make_task(name, masks=True) as task:
            obs = task.reset(0)
            assert obs["mask"].shape == (84, 84)
            for group in TASKS.get(name).mask_groups:
                m = task.mask([group])
                assert m.sum() >= 3, f"{name}: mask group {group} covers {m.sum()} pixels"
            assert np.array_equal(obs["mask"], task.mask())


def test_video_hard_replaces_sky_and_floor_but_never_the_agent():
    clip = str(DMCGB / "video_hard" / "video2.mp4")
    with make_task("dmc_walker_walk", masks=True) as clean, \
            make_task("dmc_walker_walk", masks=True, shift="video_hard", shift_options={"sources": [clip]}) as hard:
        a, b = clean.reset(2), hard.reset(2)
        labels = hard._view.labels(hard._data)
        background = load_video(clip, 84, 1000, "stretch")[0]  # DMC-GB: whole frame, first frame
    agent = a["mask"]
    assert np.array_equal(a["pixels"][agent], b["pixels"][agent])
    replaced = labels <= Label.SURFACE
    assert replaced.mean() > 0.5
    assert np.array_equal(b["pixels"][replaced], background[replaced])


def test_video_easy_keeps_the_floor():
    with make_task("dmc_walker_walk") as clean, \
            make_task("dmc_walker_walk", shift="video_easy", shift_options=SHIFT_CONFIGS["video_easy"]) as easy:
        a, b = clean.reset(2)["pixels"], easy.reset(2)["pixels"]
        labels = easy._view.labels(easy._data)
    floor = labels == Label.SURFACE
    assert floor.any() and np.array_equal(a[floor], b[floor])
    assert (a[labels == Label.SKY] != b[labels == Label.SKY]).any()


def _dmcgb_reference(domain_module, entry, qpos: np.ndarray, camera: int) -> np.ndarray:
    """The frame DMC-GB renders for a colour entry: edit dm_control's XML assets the way its
    settings module does, recompile the model, restore the state, render."""
    import mujoco

    xml, assets = domain_module.get_model_and_assets()
    assets = dict(assets)
    fmt = lambda v: f"{v[0]} {v[1]} {v[2]}"  # noqa: E731  (DMC-GB's own formatting)
    sky = ElementTree.fromstring(assets["./common/skybox.xml"])
    sky.find(".//texture").set("rgb1", fmt(entry.skybox_rgb))
    mats = ElementTree.fromstring(assets["./common/materials.xml"])
    grid = mats.find(".//texture[@name='grid']")
    grid.set("rgb1", fmt(entry.grid_rgb1))
    grid.set("rgb2", fmt(entry.grid_rgb2))
    mats.find(".//material[@name='self']").set("rgba", fmt(entry.self_rgb) + " 1")
    assets["./common/skybox.xml"] = ElementTree.tostring(sky)
    assets["./common/materials.xml"] = ElementTree.tostring(mats)
    model = mujoco.MjModel.from_xml_string(xml.decode() if isinstance(xml, bytes) else xml, assets)
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 84, 84) as renderer:
        renderer.update_scene(data, camera=camera)
        return renderer.render()


@pytest.mark.parametrize("domain,task_name,index", [("walker", "walk", 0), ("cartpole", "swingup", 37)])
def test_colour_file_entry_gives_dmcgbs_colours(domain, task_name, index):
    from dm_control import suite

    entries = load_color_file(DMCGB / "color_hard.pt")
    with make_task(f"dmc_{domain}_{task_name}", shift="color_hard",
                   shift_options={"colors": str(DMCGB / "color_hard.pt"), "entry": index}) as task:
        ours = task.reset(4)["pixels"]
        qpos = task._data.qpos.copy()
    reference = _dmcgb_reference(getattr(suite, domain), entries[index], qpos, 0)
    assert np.array_equal(ours, reference)


def test_colour_files_load_safely_and_bad_ones_are_refused(tmp_path):
    easy = load_color_file(DMCGB / "color_easy.pt")
    assert len(easy) == 100
    np.testing.assert_allclose(easy[0].skybox_rgb, [0.25139271, 0.5831122, 0.88217072], atol=1e-8)
    # a pickle that would run a command when unpickled is refused, and nothing runs
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps([Exploit()], protocol=2))
    with pytest.raises(ConfigError, match="evil.pt is damaged or not a colour file"):
        load_color_file(evil)
    assert not marker.exists()
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes((DMCGB / "color_hard.pt").read_bytes()[:5000])
    with pytest.raises(ConfigError, match="cut.pt is damaged"):
        load_color_file(truncated)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([easy[0].as_dict(), {**easy[1].as_dict(), "grid_rgb1": [0.1, 2.0, 0.3]}]))
    with pytest.raises(ConfigError, match=r"bad.json entry 1 grid_rgb1: .* not three numbers in \[0, 1\]"):
        load_color_file(bad)
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps([{**easy[0].as_dict(), "sky_rgb": [0, 0, 0]}]))
    with pytest.raises(ConfigError, match="entry 0: unknown sky_rgb"):
        load_color_file(typo)
    good = tmp_path / "mine.json"
    good.write_text(json.dumps([e.as_dict() for e in easy[:3]]))
    assert [e.as_dict() for e in load_color_file(good)] == [e.as_dict() for e in easy[:3]]
    with pytest.raises(ConfigError, match="'entry' must be between 0 and 2"):
        make_task("dmc_cartpole_balance", shift="color_easy", shift_options={"colors": str(good), "entry": 3})


@pytest.mark.parametrize("shift,std", [("color_easy", 0.1), ("color_hard", 0.2)])
def test_builtin_generator_matches_dmcgbs_ranges(shift, std):
    with make_task("dmc_cartpole_balance", shift=shift) as task:
        colour = task._view.shift
        draws = [colour.draw(np.random.default_rng(i)) for i in range(1500)]
    original = colour.original
    np.testing.assert_allclose(original.skybox_rgb, [0.4, 0.6, 0.8])
    np.testing.assert_allclose(original.grid_rgb1, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(original.self_rgb, [0.7, 0.5, 0.3])
    offsets = np.stack([d.self_rgb - original.self_rgb for d in draws])
    inside = (np.stack([d.self_rgb for d in draws]) > 0) & (np.stack([d.self_rgb for d in draws]) < 1)
    assert abs(offsets[inside].std() - std) < 0.2 * std
    gap = np.stack([d.grid_rgb2 - d.grid_rgb1 for d in draws])
    np.testing.assert_allclose(gap[(np.stack([d.grid_rgb2 for d in draws]) < 1)], 0.1, atol=1e-12)


def test_distractor_and_goals_are_refused_with_reasons():
    with pytest.raises(ConfigError, match="shift 'distractor' does not apply to dmc_walker_walk: distractors need a table top"):
        make_task("dmc_walker_walk", shift="distractor")
    with pytest.raises(ConfigError, match="no goal images"):
        make_task("dmc_walker_walk", goal_conditioned=True)
    with pytest.raises(ConfigError, match="max_episode_steps.*500 agent steps"):
        make_task("dmc_walker_walk", max_episode_steps=501)
    with make_task("dmc_reacher_easy") as task:
        task.reset(0)
        with pytest.raises(NotImplementedError, match="no scripted expert; train a state agent .* vfmbench collect --expert RUN"):
            task.expert_action()


def test_frame_stack_wrapper_stacks_the_last_three_frames():
    actions = np.random.default_rng(3).uniform(-1, 1, (3, 1))
    with make_task("dmc_cartpole_swingup") as plain:
        frames = _frames(plain, 9, 3, actions)
    with make_task("dmc_cartpole_swingup", wrappers=[{"name": "frame_stack", "options": {"frames": 3}}]) as task:
        assert task.spaces.image_shape == (84, 84, 9)
        first = task.reset(9)["pixels"]
        stacked = [task.step(a).observation["pixels"] for a in actions]
    assert np.array_equal(first, np.concatenate([frames[0]] * 3, axis=-1))
    assert np.array_equal(stacked[-1], np.concatenate(frames[1:4], axis=-1))
    assert np.array_equal(stacked[0], np.concatenate([frames[0], frames[0], frames[1]], axis=-1))


def test_tasks_of_several_families_exit_cleanly():
    """GL contexts are freed before EGL is torn down, whichever family's simulator came first."""
    import subprocess
    import sys

    code = ("from vfmbench.tasks import make_task\n"
            "tasks = [make_task(n, resolution=16) for n in ('fetch_reach', 'dmc_reacher_easy')]\n"
            "[t.reset(0) for t in tasks]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Exception ignored" not in proc.stderr, proc.stderr[-2000:]
