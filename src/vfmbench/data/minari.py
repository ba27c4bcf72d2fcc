"""Import a Minari dataset of an Adroit task (D4RL's expert, human and cloned data) into a
vfmbench dataset, re-rendering every frame from the simulator state.

What the D4RL Adroit ``-v2`` Minari datasets record: per step the environment's observation
vector, the action, reward, termination, truncation and ``infos["success"]``; per episode the
reset options, among them ``initial_state_dict`` (``qpos``, ``qvel`` and the episode's
randomised pose: door ``door_body_pos``, hammer ``board_pos``, pen ``desired_orien``), with
which Minari's generation scripts reset ``AdroitHand*-v1`` before stepping it with D4RL's
actions. The observation vectors alone do not determine the simulator state (door's lack the
arm's slide joint ``ARTz`` and the door's position, pen's the pen's roll about its axis, none
holds all velocities), so the importer restores each episode's recorded initial state and
replays the recorded actions in the task's environment, one environment step per action, and
checks after every step that the environment's observation vector equals the recorded one
within ``max_drift``: a dataset whose states cannot be reproduced so (another simulator
version, no recorded initial state) is refused with an error naming the episode and step.

Actions: the dataset's actions are per environment step and the Adroit tasks act every 2
environment steps (action repeat 2). The imported episode has one frame every 2 environment
steps (steps 0, 2, 4, ...), each with the action recorded at that step, so every stored
(frame, state, action) is one the dataset recorded and the frames are spaced as the task that
evaluates a policy trained on them; the manifest records this (``source.env_steps_per_frame``).
Rewards are not stored (vfmbench datasets hold none); ``success`` per episode is whether any
recorded step succeeded.
"""

from __future__ import annotations

import os
import platform
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from vfmbench.data.collection import absolute_paths
from vfmbench.data.episodes import EpisodeDataset, EpisodeWriter
from vfmbench.tasks import TaskConfig, make_task
from vfmbench.utils.errors import ConfigError, DatasetError
from vfmbench.utils.imports import require

_STATE_PREFIX = "options/initial_state_dict/"  # where Minari stores an episode's reset options


@dataclass
class MinariImportConfig:
    """What to import: Minari dataset ``dataset`` (e.g. ``D4RL/door/expert-v2``) re-rendered in
    task ``task``; its first ``episodes`` episodes (None: all); ``path`` is the local Minari root
    (None: ``MINARI_DATASETS_PATH`` or minari's default ``~/.minari/datasets``); ``max_drift`` the
    largest absolute difference (radians, metres) allowed between a replayed observation vector
    and the recorded one."""

    dataset: str = "D4RL/door/expert-v2"
    task: str = "adroit_door"
    episodes: int | None = None
    path: str | None = None
    max_drift: float = 1e-3
    task_config: TaskConfig = field(default_factory=TaskConfig)

    def validate(self) -> None:
        if self.episodes is not None and self.episodes < 1:
            raise ConfigError(f"episodes must be at least 1, got {self.episodes}")
        if not self.max_drift >= 0:
            raise ConfigError(f"max_drift must be non-negative, got {self.max_drift}")
        from vfmbench.tasks import get_task_spec
        from vfmbench.tasks.adroit import ENV_IDS

        family = get_task_spec(self.task).family  # an unknown task lists the valid ones
        if family != "adroit":
            raise ConfigError(f"--task {self.task} is a {family} task; Minari's D4RL datasets are imported into "
                              f"the Adroit tasks ({', '.join('adroit_' + v for v in ENV_IDS)})")
        if self.path is not None and not Path(self.path).expanduser().is_dir():
            raise ConfigError(f"--path {self.path} is not a folder; give the folder that holds your Minari datasets")
        self.task_config.validate()


@contextmanager
def _minari_root(path: str | None) -> Iterator[None]:
    """Point minari at `path` (its ``MINARI_DATASETS_PATH``) while the block runs."""
    if path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(path).expanduser().resolve())
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def load_minari(dataset_id: str) -> Any:
    """The local Minari dataset `dataset_id`, downloaded with minari's own client when it is not
    local; `DatasetError` naming the local root, its datasets and the download's failure."""
    minari = require("minari", extra="minari")
    from minari.storage import get_dataset_path

    local = sorted(minari.list_local_datasets())
    if dataset_id not in local:
        try:
            minari.download_dataset(dataset_id)
        except Exception as exc:  # minari raises ValueError, OSError, network errors ...
            root = get_dataset_path()
            raise DatasetError(
                f"Minari dataset {dataset_id!r} is not in {root} (local datasets: {', '.join(local) or 'none'}) "
                f"and could not be downloaded ({type(exc).__name__}: {exc}); check the id (minari list remote), "
                f"download it where there is network (minari download {dataset_id}) and pass that folder "
                f"with --path"
            ) from None
    try:
        return minari.load_dataset(dataset_id)
    except Exception as exc:
        raise DatasetError(f"Minari dataset {dataset_id!r} cannot be read ({type(exc).__name__}: {exc}); "
                           f"download it again (minari download --force {dataset_id})") from None


def _check_compatible(ds: Any, dataset_id: str, task: Any) -> None:
    """The dataset must come from the task's environment, with its action and observation sizes."""
    from vfmbench.tasks.adroit import ENV_IDS, AdroitTask

    if not isinstance(task, AdroitTask):
        raise ConfigError(f"vfmbench import minari re-renders Adroit datasets; task {task.name!r} is not an Adroit "
                          f"task (adroit_door, adroit_hammer, adroit_pen)")
    env_id = ENV_IDS[task.variant]
    spec = ds.spec.env_spec
    if spec is not None and spec.id.split("-v")[0] != env_id.split("-v")[0]:
        raise DatasetError(f"Minari dataset {dataset_id!r} was recorded in {spec.id}, not in {env_id} of task "
                           f"{task.name}; choose the matching --task")
    action_shape = tuple(getattr(ds.spec.action_space, "shape", None) or ())
    if action_shape != (task.action_dim,):
        raise DatasetError(f"Minari dataset {dataset_id!r} has actions of shape {action_shape}, task {task.name} "
                           f"takes {task.action_dim} numbers; choose the matching --task")
    obs_shape = tuple(getattr(ds.spec.observation_space, "shape", None) or ())
    if obs_shape != (task.state_dim,):
        raise DatasetError(f"Minari dataset {dataset_id!r} has observations of shape {obs_shape}, {env_id} gives "
                           f"{task.state_dim} numbers; it was not recorded in {env_id}")


def _initial_states(ds: Any, dataset_id: str, indices: list[int]) -> dict[int, dict[str, np.ndarray]]:
    """Each episode's recorded initial simulator state (its reset options), read from the HDF5 file."""
    h5py = require("h5py", extra="minari")
    path = Path(ds.storage.data_path) / "main_data.hdf5"
    if not path.is_file():
        raise DatasetError(f"Minari dataset {dataset_id!r} has no {path.name} in {path.parent} (its data format is "
                           f"not HDF5); vfmbench reads the initial states of HDF5 datasets only")
    states = {}
    with h5py.File(path, "r") as f:
        for i in indices:
            attrs = f[f"episode_{i}"].attrs
            state = {k[len(_STATE_PREFIX):]: np.asarray(v) for k, v in attrs.items() if k.startswith(_STATE_PREFIX)}
            if not state:
                raise DatasetError(
                    f"{path}: episode_{i} records no initial simulator state (reset option 'initial_state_dict', "
                    f"as the D4RL Adroit -v2 datasets do); Adroit observation vectors do not determine the state "
                    f"(they omit velocities, the door's arm slide joint and position, the pen's roll), so its "
                    f"frames cannot be re-rendered faithfully"
                )
            states[i] = state
    return states


def import_minari(config: MinariImportConfig, out: str | Path, progress: bool = True) -> EpisodeDataset:
    """Re-render Minari dataset ``config.dataset`` in task ``config.task`` into a new dataset folder
    `out` (the format `vfmbench collect` writes: pixels ``[N, R, R, 3]`` uint8, state ``[N, S]``,
    proprio ``[N, P]``, actions ``[N, A]`` float32, masks ``[N, R, R]`` with ``task_config.masks``).

    `out` must not exist or be empty (`ConfigError` otherwise). The episodes are written into a
    temporary folder beside `out`, which is renamed to `out` once the dataset is complete and
    verified, so `out` never holds a partial import; a failed import removes the temporary
    folder. Errors: `DatasetError` for a dataset that is missing and cannot be downloaded, does
    not match the task, lacks initial states or cannot be replayed within ``max_drift``.
    """
    import vfmbench

    config.validate()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} is not an empty folder; vfmbench import minari writes a new dataset: choose "
                          f"another --out or delete it")
    require("minari", extra="minari")
    task_config = absolute_paths(config.task_config)
    with _minari_root(config.path):
        ds = load_minari(config.dataset)
        source_root = str(Path(ds.storage.data_path).parent)
        with make_task(config.task, task_config) as task:
            _check_compatible(ds, config.dataset, task)
            indices = [int(i) for i in ds.episode_indices]
            if config.episodes is not None:
                if config.episodes > len(indices):
                    raise ConfigError(f"--episodes {config.episodes}: Minari dataset {config.dataset!r} holds "
                                      f"{len(indices)} episodes")
                indices = indices[: config.episodes]
            states = _initial_states(ds, config.dataset, indices)
            header = {
                "task": task.describe(),
                "task_config": asdict(task_config),
                "expert": "minari",
                "source": {"minari_dataset": config.dataset, "minari_version": _minari_version(),
                           "env_spec": ds.spec.env_spec.id if ds.spec.env_spec is not None else None,
                           "env_steps_per_frame": task.action_repeat, "max_drift": config.max_drift},
                "versions": {"vfmbench": vfmbench.__version__, "numpy": np.__version__,
                             "python": platform.python_version()},
            }
            tmp = out.parent / f".{out.name}.importing-{os.getpid()}"
            if tmp.exists():
                shutil.rmtree(tmp)
            try:
                writer = EpisodeWriter(tmp, header)
                bar = tqdm(indices, desc=f"import {config.dataset}", unit="ep", disable=not progress)
                for i, episode in zip(bar, ds.iterate_episodes(indices)):
                    frames, meta = _replay(task, episode, states[i], config, f"episode_{i}")
                    writer.append(frames, {}, {"minari_episode": i, **meta})
                bar.close()
                writer.finalize({"source_root": source_root})
                out.parent.mkdir(parents=True, exist_ok=True)
                if out.exists():
                    out.rmdir()  # empty (checked above)
                tmp.rename(out)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
    return EpisodeDataset(out)


def _minari_version() -> str:
    import minari

    return minari.__version__


def _replay(task: Any, episode: Any, state: dict[str, np.ndarray], config: MinariImportConfig,
            where: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Frames of one Minari episode: restore its initial state, replay its actions one environment
    step each, observe every ``task.action_repeat``-th state; check the replay against the
    recorded observations."""
    recorded = np.asarray(episode.observations, dtype=np.float64)
    actions = np.asarray(episode.actions, dtype=np.float64)
    steps = len(actions)
    if recorded.shape[0] != steps + 1:
        raise DatasetError(f"{config.dataset} {where}: {recorded.shape[0]} observations for {steps} actions "
                           f"(Minari records one more observation than actions)")
    if not np.isfinite(actions).all():
        raise DatasetError(f"{config.dataset} {where}: the recorded actions hold NaN or infinite values")
    task.reset(0)  # starts the shift's episode; the state is the recorded one
    obs = task.set_env_state(state, t=0)
    drift = _check_drift(obs["state"], recorded[0], 0, config, where)
    keys = {"pixels": "pixels", "state": "state", "proprio": "proprio", **({"mask": "masks"} if "mask" in obs else {})}
    frames: dict[str, list[np.ndarray]] = {name: [] for name in (*keys.values(), "actions")}
    success = bool(np.asarray(episode.infos.get("success", [False])).any()) if episode.infos else False
    for k in range(steps):
        if k % task.action_repeat == 0:
            if k:
                obs = task.observe(k // task.action_repeat)
            for key, name in keys.items():
                frames[name].append(obs[key])
            frames["actions"].append(actions[k].astype(np.float32))
        vector, _, _ = task.env_step(actions[k])
        drift = max(drift, _check_drift(vector, recorded[k + 1], k + 1, config, where))
    return {k: np.stack(v) for k, v in frames.items()}, {"success": success, "env_steps": steps, "drift": drift}


def _check_drift(replayed: np.ndarray, recorded: np.ndarray, step: int, config: MinariImportConfig,
                 where: str) -> float:
    """The largest difference between a replayed and the recorded observation vector, if allowed."""
    drift = float(np.abs(np.asarray(replayed, np.float64) - recorded).max())
    if not drift <= config.max_drift:
        raise DatasetError(
            f"{config.dataset} {where}: replaying the recorded actions from the recorded initial state departs "
            f"from the recorded observation of environment step {step} by {drift:.3g} (allowed: --max-drift "
            f"{config.max_drift:g}); the dataset was recorded with another simulator or its states are not "
            f"reproducible, so frames rendered here would not show what was recorded"
        )
    return drift
