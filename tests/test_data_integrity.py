"""Damaged data is never read as if it were whole: missing, truncated or altered chunks, garbled
manifests, interrupted extensions, invalid collect settings, file modes and stored paths."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from vfmbench.data import collection as collect_mod
from vfmbench.data.collection import CollectConfig, collect
from vfmbench.data.episodes import EpisodeDataset, EpisodeWriter
from vfmbench.utils.errors import ConfigError, DatasetError
from vfmbench.utils.io import write_json_atomic

# 96x96x3 frames make pixel chunks of 151 rows and 2-float actions chunks of 256 rows, so six
# 50-frame episodes (300 frames) fill chunk 0 of both arrays and end in a partly filled chunk 1.
SIDE, EPISODES, LENGTH = 96, 6, 50


def _synthetic(root, seed=0):
    rng = np.random.default_rng(seed)
    w = EpisodeWriter(root, {"task": {"task": "synthetic", "state_dim": 3}})
    for ep in range(EPISODES):
        w.append({"pixels": rng.integers(0, 256, (LENGTH, SIDE, SIDE, 3), dtype=np.uint8),
                  "actions": rng.normal(size=(LENGTH, 2)).astype(np.float32)},
                 {"goal_pixels": rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)}, {"seed": ep})
    return w.finalize()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    _synthetic(root / "a", seed=0)
    _synthetic(root / "b", seed=1)  # same layout, other content
    return root


@pytest.fixture()
def synthetic(pristine, tmp_path):
    shutil.copytree(pristine / "a", tmp_path / "a")
    return tmp_path / "a"


def _chunk(root, array, index):
    ndim = {"pixels": 4, "actions": 2, "goal_pixels": 4}[array]
    return root / "episodes.zarr" / array / "c" / str(index) / "/".join(["0"] * (ndim - 1))


def _read_all(root, array):
    ds = EpisodeDataset(root)
    ds.load(array)
    list(ds.iter_chunks(array, 64))


CHUNKS = [("pixels", 0), ("pixels", 1), ("actions", 0), ("actions", 1), ("goal_pixels", 0)]


# -- case 1: missing or damaged chunks ----------------------------------------------------------------------------


@pytest.mark.parametrize("array,index", CHUNKS)
def test_missing_chunk_is_refused_naming_the_file_and_array(synthetic, array, index):
    f = _chunk(synthetic, array, index)
    f.unlink()
    with pytest.raises(DatasetError) as err:
        _read_all(synthetic, array)
    msg = str(err.value)
    assert str(f.relative_to(synthetic)) in msg and "missing" in msg
    assert f"array {array!r}" in msg and "collect" in msg


@pytest.mark.parametrize("array,index", CHUNKS)
def test_truncated_chunk_is_a_dataset_error_not_a_decoder_traceback(synthetic, array, index):
    f = _chunk(synthetic, array, index)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DatasetError) as err:
        _read_all(synthetic, array)
    assert str(f.relative_to(synthetic)) in str(err.value) and f"array {array!r}" in str(err.value)


@pytest.mark.parametrize("array,index", CHUNKS)
def test_chunk_replaced_by_other_valid_data_fails_the_checksum(synthetic, pristine, array, index):
    """A chunk that decodes fine but holds other content (a restore from another dataset, a bit
    flip that zstd does not notice) fails the recorded checksum; iter_chunks fails before it
    yields a damaged row."""
    f = _chunk(synthetic, array, index)
    other = _chunk(pristine / "b", array, index)
    f.write_bytes(other.read_bytes())
    with pytest.raises(DatasetError, match="checksum|size") as err:
        EpisodeDataset(synthetic).load(array)
    assert str(f.relative_to(synthetic)) in str(err.value)
    ds_rows = []
    with pytest.raises(DatasetError):
        # try to open; if opening passes (same size), iterating must fail before the damaged rows
        ds = EpisodeDataset(synthetic)
        for start, block in ds.iter_chunks(array, 16):
            ds_rows.append((start, block))
    intact = EpisodeDataset(pristine / "a").load(array)
    for start, block in ds_rows:  # whatever was yielded is intact data
        np.testing.assert_array_equal(block, intact[start : start + len(block)])


def test_intact_data_reads_back_exactly(synthetic, pristine):
    ds = EpisodeDataset(synthetic)
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (LENGTH, SIDE, SIDE, 3), dtype=np.uint8)  # episode 0 as written
    np.testing.assert_array_equal(ds.load("pixels")[:LENGTH], px)
    blocks = np.concatenate([b for _, b in ds.iter_chunks("pixels", 64)])
    np.testing.assert_array_equal(blocks, ds.load("pixels"))
    assert ds.fingerprint() != EpisodeDataset(pristine / "b").fingerprint()


def test_train_refuses_a_dataset_with_missing_chunks(reach, tmp_path, capsys):
    from vfmbench.cli import app

    (reach / "episodes.zarr" / "pixels" / "c" / "0" / "0" / "0" / "0").unlink()
    (reach / "episodes.zarr" / "actions" / "c" / "0" / "0").unlink()
    code = app(["train", "--dataset", str(reach), "--encoder", "state", "--method", "bc", "--out",
                str(tmp_path / "run"), "--no-eval", "--no-progress", "--set", "train.steps=2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "episodes.zarr/pixels/c/0/0/0/0" in err or "episodes.zarr/actions/c/0/0" in err
    assert not (tmp_path / "run" / "result.json").exists()


def test_cache_never_serves_embeddings_of_damaged_data(reach, tmp_path):
    import torch

    from vfmbench.cache import EmbeddingCache
    from vfmbench.encoders import create_encoder

    chunk = reach / "episodes.zarr" / "pixels" / "c" / "0" / "0" / "0" / "0"
    saved = chunk.read_bytes()
    chunk.unlink()
    cache = EmbeddingCache(tmp_path / "cache")
    enc = create_encoder("random_resnet18")
    with pytest.raises(DatasetError, match="missing"):
        cache.get_or_compute(enc, EpisodeDataset(reach), batch_size=64, progress=False)
    assert cache.entries() == []
    chunk.write_bytes(saved)  # restored: the intact data's embeddings, not the damaged ones
    ds = EpisodeDataset(reach)
    got = cache.get_or_compute(enc, ds, batch_size=64, progress=False)
    with torch.inference_mode():
        direct = enc(torch.from_numpy(ds.load("pixels"))).numpy()
    np.testing.assert_allclose(got, direct, rtol=1e-4, atol=1e-5)


# -- case 2: extending a finished dataset ------------------------------------------------------------------------


def _cfg(n, **kw):
    return CollectConfig(task="fetch_reach", episodes=n, task_config={"resolution": 32, **kw})


def test_extending_a_complete_dataset_uncommits_it_before_writing(tmp_path, monkeypatch):
    from vfmbench.cache import EmbeddingCache
    from vfmbench.encoders import create_encoder

    first = collect(_cfg(2), tmp_path / "d", progress=False)
    old_fp = first.fingerprint()
    real, calls = collect_mod._run_expert_episode, {"n": 0}

    def interrupted(task, seed, noise=0.0):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(task, seed, noise)

    monkeypatch.setattr(collect_mod, "_run_expert_episode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        collect(_cfg(4), tmp_path / "d", progress=False)
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["complete"] is False and "fingerprint" not in man and len(man["episodes"]) == 3
    ds = EpisodeDataset(tmp_path / "d")
    assert not ds.complete and ds.fingerprint() != old_fp
    enc = create_encoder("random_resnet18")
    assert EmbeddingCache(tmp_path / "c").key(enc, ds) != EmbeddingCache(tmp_path / "c").key(enc, first)
    assert ds.load("actions").shape[0] == ds.load("pixels").shape[0] == ds.n_frames == 150
    monkeypatch.setattr(collect_mod, "_run_expert_episode", real)
    done = collect(_cfg(4), tmp_path / "d", progress=False)
    assert done.complete and done.num_episodes == 4 and done.fingerprint() not in (old_fp, ds.fingerprint())


def test_crash_while_writing_an_extension_leaves_an_uncommitted_dataset(tmp_path, monkeypatch):
    root = tmp_path / "d"
    w = EpisodeWriter(root, {"task": {"task": "synthetic"}})
    w.append({"actions": np.ones((5, 2), np.float32)}, {}, {"seed": 0})
    fp = w.finalize().fingerprint()
    w2 = EpisodeWriter(root, {"task": {"task": "synthetic"}})
    seen = []

    def crash(*args, **kwargs):  # the moment the first new row is written
        seen.append(json.loads((root / "manifest.json").read_text()))
        raise KeyboardInterrupt

    monkeypatch.setattr(w2, "_write", crash)
    with pytest.raises(KeyboardInterrupt):
        w2.append({"actions": np.zeros((5, 2), np.float32)}, {}, {"seed": 1})
    assert seen[0]["complete"] is False and "fingerprint" not in seen[0]
    ds = EpisodeDataset(root)
    assert not ds.complete and ds.num_episodes == 1 and ds.fingerprint() == fp  # same content, same key


# -- case 3: invalid collect settings create nothing --------------------------------------------------------------


def test_negative_seed_is_a_config_error_and_creates_no_folder(tmp_path, capsys):
    from vfmbench.cli import app

    out = tmp_path / "d"
    for command in (["collect", "--task", "fetch_reach", "--episodes", "1", "--out", str(out)],
                    ["tasks", "render", "--task", "dmc_walker_walk", "--out", str(out / "f.png")],
                    ["train", "--dataset", str(out), "--encoder", "state", "--out", str(out / "r")]):
        with pytest.raises(SystemExit) as exit_:
            app([*command, "--seed", "-1"])
        assert exit_.value.code == 2 and "--seed: must be between 0 and 2**32 - 1, got -1" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError, match="seed"):
        collect(CollectConfig(task="fetch_reach", episodes=1, seed=-3), out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("args", [["--episodes", "0"], ["--action-noise", "-1"], ["--resolution", "8"],
                                  ["--task", "no_such_task"]])
def test_other_invalid_collect_settings_create_no_folder(tmp_path, capsys, args):
    from vfmbench.cli import app

    out = tmp_path / "d"
    argv = ["collect", "--task", "fetch_reach", "--episodes", "1", "--out", str(out), "--no-progress", *args]
    assert app(argv) == 2
    assert not out.exists()


# -- case 4: garbled manifests -------------------------------------------------------------------------------------


def _garble(man, how):
    if how == "n_frames":
        man["n_frames"] = "abc"
    elif how == "episodes":
        man["episodes"] = 5
    elif how == "start":
        del man["episodes"][1]["start"]
    elif how == "length":
        man["episodes"][0]["length"] = -5
    elif how == "overlap":
        man["episodes"][1]["start"] = 0
    elif how == "header":
        man["header"] = ["not", "a", "mapping"]
    elif how == "version":
        man["version"] = "two"
    elif how == "complete":
        man["complete"] = "yes"
    elif how == "episode":
        man["episodes"][0] = "ep0"
    return man


@pytest.mark.parametrize("how,key", [("n_frames", "n_frames"), ("episodes", "episodes"), ("start", "start"),
                                     ("length", "length"), ("overlap", "start"), ("header", "header"),
                                     ("version", "version"), ("complete", "complete"), ("episode", "episodes")])
def test_garbled_manifest_values_name_the_file_and_key(synthetic, how, key):
    path = synthetic / "manifest.json"
    path.write_text(json.dumps(_garble(json.loads(path.read_text()), how)))
    with pytest.raises(DatasetError) as err:
        EpisodeDataset(synthetic)
    assert str(path) in str(err.value) and key in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage\x80\x81", b"[1, 2, 3]", b"null", b"{\"format\": "])
def test_unreadable_manifest_is_a_dataset_error(synthetic, content):
    path = synthetic / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="manifest.json"):
        EpisodeDataset(synthetic)
    with pytest.raises(DatasetError, match="manifest.json"):  # nor can a writer append to it
        EpisodeWriter(synthetic, {"task": {"task": "synthetic", "state_dim": 3}})


# -- case 7: file modes ---------------------------------------------------------------------------------------------


def test_atomic_writes_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
        (tmp_path / "plain.txt").write_text("x")
        os.umask(0o077)
        write_json_atomic(tmp_path / "b.json", {"x": 1})
        assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
        os.umask(0o002)
        write_json_atomic(tmp_path / "a.json", {"x": 2})  # replacing keeps a fresh file's mode
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o664
        assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "plain.txt"]
        os.umask(0o022)
        root = tmp_path / "ds"
        EpisodeWriter(root, {"task": {}}).append({"actions": np.ones((2, 2), np.float32)}, {}, {})
        modes = {stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}
        assert modes == {0o644}
    finally:
        os.umask(old)


# -- case 8: shift file paths are stored absolute --------------------------------------------------------------------


def test_video_sources_are_stored_absolute_and_found_from_another_folder(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    from vfmbench.tasks import TaskConfig, make_task
    from vfmbench.utils.config import from_dict

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    rng = np.random.default_rng(0)
    imageio.mimsave(work / "clip.gif", [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(3)])
    monkeypatch.chdir(work)
    cfg = CollectConfig(task="fetch_reach", episodes=1,
                        task_config={"resolution": 32, "shift": "video_easy",
                                     "shift_options": {"sources": ["clip.gif"]}})
    ds = collect(cfg, "data", progress=False)
    sources = ds.header["task_config"]["shift_options"]["sources"]
    assert sources == [str(work / "clip.gif")]
    monkeypatch.chdir(elsewhere)
    task_config = from_dict(TaskConfig, EpisodeDataset(work / "data").header["task_config"], "manifest")
    with make_task("fetch_reach", task_config) as task:
        assert task.reset(0)["pixels"].shape == (32, 32, 3)
    # resuming from the same folder matches the stored header
    monkeypatch.chdir(work)
    assert collect(cfg, "data", progress=False).num_episodes == 1


# -- shared reach dataset -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _reach_pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("reach") / "reach"
    collect(_cfg(5), root, progress=False)
    return root


@pytest.fixture()
def reach(_reach_pristine, tmp_path):
    shutil.copytree(_reach_pristine, tmp_path / "reach")
    return tmp_path / "reach"


# -- case 6, datasets: temporary manifest files of killed writers --------------------------------------------------


def test_manifest_temporaries_of_ended_processes_are_removed(synthetic):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = synthetic / f".manifest.json.{proc.pid}.0badf00d.tmp"
    stale.write_text("{")
    live = synthetic / f".manifest.json.{os.getpid()}.0badf00d.tmp"  # this process: might be writing
    live.write_text("{")
    EpisodeDataset(synthetic)  # readers leave them alone
    assert stale.exists()
    rng = np.random.default_rng(9)
    w = EpisodeWriter(synthetic, {"task": {"task": "synthetic", "state_dim": 3}})
    w.append({"pixels": rng.integers(0, 256, (LENGTH, SIDE, SIDE, 3), dtype=np.uint8),
              "actions": rng.normal(size=(LENGTH, 2)).astype(np.float32)},
             {"goal_pixels": rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)}, {"seed": 99})
    assert not stale.exists() and live.exists()
    assert EpisodeDataset(synthetic).num_episodes == EPISODES + 1


# -- format 1 (no checksums) ------------------------------------------------------------------------------------------


def _as_version_1(root):
    """Rewrite a dataset's manifest as an older vfmbench wrote it; returns its fingerprint then."""
    import hashlib

    import zarr

    path = root / "manifest.json"
    man = json.loads(path.read_text())
    man["version"] = 1
    del man["arrays"]
    for ep in man["episodes"]:
        del ep["sha256"]
    h = hashlib.sha256()
    h.update(json.dumps(man["header"], sort_keys=True).encode())
    h.update(json.dumps(man["episodes"], sort_keys=True).encode())
    group = zarr.open_group(str(root / "episodes.zarr"), mode="r")
    for name in sorted(group.array_keys()):
        rows = man["n_frames"] if name in ("pixels", "actions") else len(man["episodes"])
        h.update(name.encode())
        h.update(np.ascontiguousarray(group[name][:rows]).tobytes())
    man["fingerprint"] = h.hexdigest()[:32]
    path.write_text(json.dumps(man))
    return man["fingerprint"]


def test_version_1_datasets_are_read_unverified_and_not_extended(synthetic, caplog):
    import logging

    fp = _as_version_1(synthetic)
    with caplog.at_level(logging.WARNING):
        ds = EpisodeDataset(synthetic)
        EpisodeDataset(synthetic)
    warnings = [r.getMessage() for r in caplog.records if "unverified" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert not ds.verified and ds.fingerprint() == fp  # cache keys of such datasets stay valid
    assert ds.load("pixels").shape == (EPISODES * LENGTH, SIDE, SIDE, 3)
    with pytest.raises(DatasetError, match="older vfmbench"):
        EpisodeWriter(synthetic, {"task": {"task": "synthetic", "state_dim": 3}}).append(
            {"pixels": np.zeros((1, SIDE, SIDE, 3), np.uint8), "actions": np.zeros((1, 2), np.float32)},
            {"goal_pixels": np.zeros((SIDE, SIDE, 3), np.uint8)}, {})
    _chunk(synthetic, "actions", 0).unlink()  # its content no longer matches its fingerprint
    with pytest.raises(DatasetError, match="fingerprint"):
        EpisodeDataset(synthetic).fingerprint()


@pytest.mark.parametrize("damage", ["missing", "replaced"])
def test_appending_to_a_damaged_dataset_is_refused(synthetic, pristine, damage):
    """Appending rewrites the partly filled last chunk; over a lost or altered one, the damage
    would become part of a full chunk with a fresh checksum."""
    f = _chunk(synthetic, "pixels", 1)
    if damage == "missing":
        f.unlink()
    else:
        f.write_bytes(_chunk(pristine / "b", "pixels", 1).read_bytes())
    w = EpisodeWriter(synthetic, {"task": {"task": "synthetic", "state_dim": 3}})
    with pytest.raises(DatasetError, match="missing" if damage == "missing" else "checksum"):
        w.append({"pixels": np.zeros((LENGTH, SIDE, SIDE, 3), np.uint8), "actions": np.zeros((LENGTH, 2), np.float32)},
                 {"goal_pixels": np.zeros((SIDE, SIDE, 3), np.uint8)}, {"seed": 6})
    assert json.loads((synthetic / "manifest.json").read_text())["complete"] is True  # nothing was touched
