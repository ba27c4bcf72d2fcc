"""Minari importer: a small dataset written in Minari's own format (as Minari's D4RL Adroit
generation scripts write them: reset with a recorded initial state, then the recorded actions)
is re-rendered, and the frames equal frames rendered live from the same states."""

import os

import numpy as np
import pytest

from vfmbench.cli import app
from vfmbench.data.collection import open_dataset
from vfmbench.data.minari import MinariImportConfig, import_minari
from vfmbench.tasks import make_task
from vfmbench.utils.errors import ConfigError, DatasetError

# minari asks dataset creators for metadata that test datasets do without
_METADATA = "ignore:.*(code_permalink|author|eval_env|algorithm_name|description|env_spec).*:UserWarning"
pytestmark = [pytest.mark.sim, pytest.mark.filterwarnings(_METADATA)]

LENGTHS = (7, 4)  # environment steps per episode: 4 and 2 frames at action repeat 2


def _episode(env, seed, steps, rng):
    """One episode as Minari's DataCollector records it, from the state a reset with `seed` draws."""
    from minari.data_collector import EpisodeBuffer

    env.reset(seed=seed)
    state = env.unwrapped.get_env_state()
    obs, _ = env.reset(seed=seed + 1, options={"initial_state_dict": state})
    observations, actions, rewards, success = [obs], [], [], [False]
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        success.append(info["success"])
    return EpisodeBuffer(options={"initial_state_dict": state}, observations=observations, actions=actions,
                         rewards=rewards, terminations=[False] * steps, truncations=[False] * steps,
                         infos={"success": success}), state


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    """A local Minari root with ``test/door/random-v0`` (2 episodes, random actions) and
    ``test/door/nostate-v0`` (the same episodes without their initial states)."""
    import gymnasium as gym
    import minari

    from vfmbench.tasks.adroit import env_classes

    env_classes()  # registers AdroitHand*-v1
    root = tmp_path_factory.mktemp("minari")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        env = gym.make("AdroitHandDoor-v1", max_episode_steps=200)
        rng = np.random.default_rng(0)
        episodes = [_episode(env, 10 + i, n, rng) for i, n in enumerate(LENGTHS)]
        minari.create_dataset_from_buffers("test/door/random-v0", [e for e, _ in episodes], env=env,
                                           algorithm_name="random", description="test data")
        stripped = [type(e)(**{**e.__dict__, "options": None}) for e, _ in episodes]
        minari.create_dataset_from_buffers("test/door/nostate-v0", stripped, env=env, description="no states")
        env.close()
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    return root, [(e, s) for e, s in episodes]


def test_round_trip_frames_states_actions(minari_root, tmp_path):
    root, episodes = minari_root
    out = tmp_path / "door"
    rc = app(["import", "minari", "--dataset", "test/door/random-v0", "--task", "adroit_door", "--out", str(out),
              "--path", str(root), "--masks", "--no-progress"])
    assert rc == 0
    ds = open_dataset(out)
    assert ds.complete and ds.num_episodes == 2
    assert list(ds.episode_lengths) == [(n + 1) // 2 for n in LENGTHS]
    assert ds.manifest["header"]["expert"] == "minari"
    assert ds.manifest["header"]["source"]["env_steps_per_frame"] == 2
    assert ds.manifest["header"]["task"]["task"] == "adroit_door"
    assert all(e["drift"] < 1e-6 and "seed" not in e for e in ds.manifest["episodes"])  # float32 rounding
    pixels, states, actions, masks = (ds.load(k) for k in ("pixels", "state", "actions", "masks"))
    # live: restore the recorded state, replay the recorded actions, render every second state
    with make_task("adroit_door", masks=True) as task:
        start = 0
        for buffer, state in episodes:
            task.reset(0)
            live = [task.set_env_state(state)]
            for k, action in enumerate(buffer.actions):
                task.env_step(np.asarray(action, np.float64))
                if (k + 1) % 2 == 0 and k + 1 < len(buffer.actions):
                    live.append(task.observe((k + 1) // 2))
            n = len(live)
            np.testing.assert_array_equal(pixels[start:start + n], np.stack([o["pixels"] for o in live]))
            np.testing.assert_array_equal(masks[start:start + n], np.stack([o["mask"] for o in live]))
            np.testing.assert_array_equal(states[start:start + n], np.stack([o["state"] for o in live]))
            np.testing.assert_array_equal(actions[start:start + n], np.stack(buffer.actions[::2]))
            np.testing.assert_allclose(states[start:start + n], np.stack(buffer.observations[:-1:2]), atol=1e-6)
            start += n
    assert pixels.shape[1:] == (84, 84, 3) and masks[0].any()
    assert not np.array_equal(pixels[0], pixels[LENGTHS[0] // 2 + 1])  # episodes start from their own states


def test_refuses_unknown_dataset_wrong_task_missing_states_and_nonempty_out(minari_root, tmp_path):
    root, _ = minari_root
    cfg = dict(path=str(root))
    with pytest.raises(DatasetError, match="recorded in AdroitHandDoor-v1, not in AdroitHandHammer-v1"):
        import_minari(MinariImportConfig(dataset="test/door/random-v0", task="adroit_hammer", **cfg), tmp_path / "b")
    with pytest.raises(DatasetError, match="episode_0 records no initial simulator state"):
        import_minari(MinariImportConfig(dataset="test/door/nostate-v0", task="adroit_door", **cfg), tmp_path / "c")
    with pytest.raises(ConfigError, match="fetch_reach is a fetch task; Minari.s D4RL datasets are imported into the Adroit tasks"):
        import_minari(MinariImportConfig(dataset="test/door/random-v0", task="fetch_reach", **cfg), tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x").write_text("x")
    with pytest.raises(ConfigError, match="is not an empty folder"):
        import_minari(MinariImportConfig(dataset="test/door/random-v0", task="adroit_door", **cfg), tmp_path / "e")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folders left
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_unknown_dataset_is_a_clear_error(minari_root, tmp_path):
    """Not local, and minari's download fails (no such dataset, or no network: about 25 s here)."""
    root, _ = minari_root
    with pytest.raises(DatasetError, match=r"'test/door/nothing-v0' is not in .*test/door/random-v0.*could not be "
                                           r"downloaded"):
        import_minari(MinariImportConfig(dataset="test/door/nothing-v0", task="adroit_door", path=str(root)),
                      tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_action_size_mismatch_and_drift_are_refused(minari_root, tmp_path):
    """A dataset whose actions do not fit the task, and a replay that departs from the record."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    root, episodes = minari_root
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        buffer, state = episodes[1]
        wide = EpisodeBuffer(options={"initial_state_dict": state}, observations=buffer.observations,
                             actions=[np.zeros(30, np.float32)] * len(buffer.actions), rewards=buffer.rewards,
                             terminations=buffer.terminations, truncations=buffer.truncations, infos=buffer.infos)
        minari.create_dataset_from_buffers("test/door/wide-v0", [wide], action_space=gym.spaces.Box(-1, 1, (30,)),
                                           observation_space=gym.spaces.Box(-np.inf, np.inf, (39,)))
        shifted = {**state, "door_body_pos": state["door_body_pos"] + 0.01}  # not the state it was recorded from
        moved = EpisodeBuffer(options={"initial_state_dict": shifted}, observations=buffer.observations,
                              actions=buffer.actions, rewards=buffer.rewards, terminations=buffer.terminations,
                              truncations=buffer.truncations, infos=buffer.infos)
        minari.create_dataset_from_buffers("test/door/moved-v0", [moved], env="AdroitHandDoor-v1")
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    with pytest.raises(DatasetError, match=r"actions of shape \(30,\), task adroit_door takes 28 numbers"):
        import_minari(MinariImportConfig(dataset="test/door/wide-v0", task="adroit_door", path=str(root)),
                      tmp_path / "w")
    with pytest.raises(DatasetError, match="departs from the recorded observation of environment step 0 by 0.01"):
        import_minari(MinariImportConfig(dataset="test/door/moved-v0", task="adroit_door", path=str(root)),
                      tmp_path / "m")
    assert not (tmp_path / "w").exists() and not (tmp_path / "m").exists()


def test_task_and_path_are_checked_before_any_download(tmp_path):
    """A wrong --task or --path is refused at once, without minari's network retries."""
    from vfmbench.data.minari import MinariImportConfig, import_minari
    from vfmbench.utils.errors import UnknownNameError

    with pytest.raises(ConfigError, match=r"dmc_walker_walk is a dmc task; .* \(adroit_door, adroit_hammer, adroit_pen\)"):
        import_minari(MinariImportConfig(task="dmc_walker_walk"), tmp_path / "a", progress=False)
    with pytest.raises(UnknownNameError, match="unknown task 'adroit_dor'"):
        import_minari(MinariImportConfig(task="adroit_dor"), tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="--path .*no-such-folder is not a folder"):
        import_minari(MinariImportConfig(path=str(tmp_path / "no-such-folder")), tmp_path / "c", progress=False)
