"""Robustness shifts: registry and options, reproducibility, distractor placement, video sources."""

import sys

import numpy as np
import pytest

from vfmbench.tasks import make_task
from vfmbench.tasks.shifts import Label, get_shift_spec, list_shifts
from vfmbench.utils.errors import ConfigError, MissingDependencyError, UnknownNameError

SHIFTED = ["distractor", "color_easy", "color_hard", "video_easy", "video_hard"]
ACTIONS = np.random.default_rng(0).uniform(-1, 1, (3, 4))


def _episode(task, seed):
    """Frames and states of a reset and three fixed actions: ([4, H, W, 3], [4, S])."""
    obs = [task.reset(seed)] + [task.step(a).observation for a in ACTIONS]
    return np.stack([o["pixels"] for o in obs]), np.stack([o["state"] for o in obs])


def test_registry_names_and_options():
    assert list_shifts() == ["none", *SHIFTED]
    assert get_shift_spec("distractor").options({"count": 3}).count == 3
    with pytest.raises(ConfigError, match="unknown key 'cont'.*valid keys: clearance"):
        get_shift_spec("distractor").options({"cont": 3})
    with pytest.raises(ConfigError, match="count must be at least 1"):
        get_shift_spec("distractor").options({"count": 0})
    with pytest.raises(ConfigError, match="colors: 'chartreuse' is not a colour"):
        get_shift_spec("distractor").options({"colors": ["chartreuse"]})
    with pytest.raises(ConfigError, match="'std' must be between 0 and 1"):
        get_shift_spec("color_hard").options({"std": 2})
    with pytest.raises(ConfigError, match="'entry' picks an entry of a colour file"):
        get_shift_spec("color_hard").options({"entry": 2})
    with pytest.raises(ConfigError, match="sources\\[0\\].*does not exist"):
        get_shift_spec("video_easy").options({"sources": ["/no/such/video.mp4"]})
    from vfmbench.tasks import TaskConfig
    from vfmbench.utils.config import from_dict

    with pytest.raises(UnknownNameError, match="valid shifts: none, distractor, color_easy"):
        from_dict(TaskConfig, {"shift": "fog"})


@pytest.mark.sim
@pytest.mark.parametrize("shift", SHIFTED)
def test_same_seed_same_frames_and_shifted_frames_keep_the_state(shift):
    with make_task("fetch_push", resolution=48, shift=shift) as a, make_task("fetch_push", resolution=48) as clean:
        px, state = _episode(a, 11)
        px_again, state_again = _episode(a, 11)  # after other resets: nothing drifts
        clean_px, clean_state = _episode(clean, 11)
        other_px, _ = _episode(a, 12)
    with make_task("fetch_push", resolution=48, shift=shift) as b:
        px_b, _ = _episode(b, 11)  # a fresh instance
    np.testing.assert_array_equal(px, px_again)
    np.testing.assert_array_equal(px, px_b)
    np.testing.assert_array_equal(state, clean_state)  # shifts are visual only
    np.testing.assert_array_equal(state, state_again)
    changed = np.abs(px.astype(int) - clean_px.astype(int)).max(-1) > 8
    assert changed.mean() > 0.003, f"{shift} barely changes the frame ({changed.mean():.4f} of pixels)"
    assert not np.array_equal(px[0], other_px[0])


@pytest.mark.sim
def test_video_frames_move_and_hard_also_covers_the_table():
    with make_task("fetch_push", resolution=48, shift="video_easy") as easy, \
            make_task("fetch_push", resolution=48, shift="video_hard") as hard:
        px, _ = _episode(easy, 3)
        labels = easy._view.labels(easy._data)
        back = labels <= Label.BACKDROP
        assert back.sum() > 20
        assert np.abs(px[0].astype(int) - px[-1].astype(int))[back].mean() > 1, "background does not move"
        hard_px = hard.reset(3)["pixels"]
        table = labels == Label.SURFACE
        clean_table = easy.reset(3)["pixels"][table]  # video_easy leaves the table alone
        assert np.abs(hard_px[table].astype(int) - clean_table.astype(int)).mean() > 20


@pytest.mark.sim
@pytest.mark.parametrize("task_name", ["fetch_push", "fetch_reach"])
def test_distractors_never_overlap_object_or_goal_at_reset(task_name):
    opts = {"count": 3}
    with make_task(task_name, resolution=64, shift="distractor", shift_options=opts) as t, \
            make_task(task_name, resolution=64) as clean:
        groups = ["goal"] if task_name == "fetch_reach" else ["object", "goal"]
        for seed in range(15):
            t.reset(seed)
            clean.reset(seed)
            raw = t._raw
            keep = [raw["desired_goal"]] + ([] if task_name == "fetch_reach" else [raw["observation"][3:6]])
            distractors = t._view.shift.distractors
            assert len(distractors) == 3
            for d in distractors:
                for p in keep:  # footprints stay clear of the object and the goal (4 cm around each)
                    assert np.hypot(*(np.asarray(d.pos[:2]) - p[:2])) >= d.radius + 0.04
            labels = t._view.labels(t._data)
            assert (labels == Label.DISTRACTOR).sum() >= 3 * 4, "distractors are not visible"
            for g in groups:  # nor do they hide any pixel of them from the camera
                np.testing.assert_array_equal(t.mask([g]), clean.mask([g]))


@pytest.mark.sim
def test_distractor_that_cannot_fit_is_a_clear_error():
    with pytest.raises(ConfigError, match="placed only .* lower count"):
        make_task("fetch_push", resolution=32, shift="distractor",
                  shift_options={"count": 40, "max_tries": 200}).reset(0)


def _write_frames(tmp_path):
    import imageio.v2 as imageio

    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250)]
    frames = [np.full((20, 30, 3), c, np.uint8) for c in colours]
    gif = tmp_path / "clip.gif"
    imageio.mimsave(gif, frames, duration=0.1)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        imageio.imwrite(folder / f"{i:03d}.png", f)
    return gif, folder, colours


@pytest.mark.sim
def test_videos_from_gif_and_frame_folder(tmp_path):
    gif, folder, colours = _write_frames(tmp_path)
    for source in (gif, folder):
        with make_task("fetch_push", resolution=32, shift="video_easy",
                       shift_options={"sources": [str(source)], "light_motion": 0.0}) as t:
            px = t.reset(0)["pixels"]
            back = t._view.labels(t._data) <= Label.BACKDROP
            shown = px[back].astype(int)
            assert min(np.abs(shown - np.array(c)).max() for c in colours) <= 3  # one solid frame
            seen = {tuple(t.step(np.zeros(4)).observation["pixels"][back][0]) for _ in range(3)}
            assert len(seen) == 3, "frames do not advance"


def test_mp4_without_the_video_extra_names_it(tmp_path, monkeypatch):
    from vfmbench.tasks.shifts import validate_shift
    from vfmbench.tasks.shifts.videos import load_video

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"vfmbench\[video\]"):
        load_video.__wrapped__(str(clip), 32, 10)
    # validating the options (before any rollout) already names the extra, for a clip and a folder of clips
    for sources in ([str(clip)], [str(tmp_path)]):
        with pytest.raises(MissingDependencyError, match=r"vfmbench\[video\]"):
            validate_shift("video_hard", {"sources": sources})


@pytest.mark.sim
def test_evaluate_under_shifts_reports_the_paired_drop():
    from vfmbench.evaluation import evaluate
    from vfmbench.evaluation.robustness import evaluate_shifts
    from vfmbench.training.trainer import RunSpec, build_agent

    cfg = {"resolution": 32, "max_episode_steps": 3}
    with make_task("fetch_reach", cfg) as t:
        agent = build_agent(RunSpec(task="fetch_reach", encoder="e2e_cnn"), t.spaces)
    report = evaluate_shifts(agent, "fetch_reach", cfg, ["video_hard", "distractor"], {"distractor": {"count": 2}},
                             episodes=2, n_envs=2, progress=False)
    assert [r.shift for r in report.results] == ["none", "video_hard", "distractor"]
    assert report.results[2].shift_options["count"] == 2
    for r in report.results:
        assert r.episodes == 2 and r.drop == pytest.approx(report.results[0].success_rate - r.success_rate)
    assert {"shift", "success", "drop"} <= set(report.rows()[0])
    with make_task("fetch_reach", cfg) as env:
        with pytest.raises(ConfigError, match="run shift 'none' but 'distractor'"):
            evaluate(agent, "fetch_reach", cfg, episodes=1, envs=[env], shift="distractor", progress=False)


@pytest.mark.sim
def test_cli_lists_shifts_and_renders_a_frame_with_its_mask(tmp_path, capsys):
    import json

    import imageio.v2 as imageio

    from vfmbench.cli import app

    assert app(["shifts", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listed] == ["none", *SHIFTED] and listed[1]["options"]["count"] == 1
    out = tmp_path / "frame.png"
    assert app(["tasks", "render", "--task", "fetch_push", "--shift", "distractor", "--shift-set", "distractor.count=2",
                "--resolution", "32", "--mask", "--out", str(out)]) == 0
    image = imageio.imread(out)
    assert image.shape == (32, 64, 3) and set(np.unique(image[:, 32:])) == {0, 255}
    assert app(["tasks", "render", "--task", "fetch_push", "--shift", "fog", "--out", str(out)]) == 2
    assert "valid shifts" in capsys.readouterr().err


def test_fetch_reads_dmcgb_colour_files_robot_takes_self_rgb():
    from pathlib import Path

    from vfmbench.tasks.shifts.color import load_color_file

    colours = Path(__file__).parent / "data" / "dmcgb" / "color_easy.pt"
    entry = load_color_file(colours)[5]
    with make_task("fetch_push", shift="color_easy", shift_options={"colors": str(colours), "entry": 5}) as task:
        task.reset(0)
        shift = task._view.shift
        robot = list(shift.layout.self_geoms)
        new = task._model.geom_rgba[robot, :3].astype(np.float64)
        before = shift._effective[robot, :3].astype(np.float64)
        original = shift.original
    assert len(robot) > 10
    np.testing.assert_allclose(original.self_rgb, before.mean(0))  # the generator's centre: the robot's mean colour
    np.testing.assert_allclose(new, np.clip(before + entry.self_rgb - original.self_rgb, 0, 1), atol=1e-6)
    assert np.abs(new - before).max() > 0.05
