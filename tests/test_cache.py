import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import vfmbench.cache as cache_module
from vfmbench.cache import EmbeddingCache
from vfmbench.data.episodes import EpisodeWriter
from vfmbench.encoders import create_encoder
from vfmbench.utils.errors import ConfigError, DatasetError


def _dataset(root, seed, frames=6):
    rng = np.random.default_rng(seed)
    w = EpisodeWriter(root, {"task": {"task": "synthetic", "state_dim": 3}})
    w.append({"pixels": rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8),
              "actions": np.zeros((frames, 2), np.float32)}, {}, {"seed": seed})
    return w.finalize()


def test_hit_miss_and_invalidation(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    ds = _dataset(tmp_path / "a", 0)
    enc = create_encoder("random_resnet18")
    first = cache.get_or_compute(enc, ds, batch_size=4, progress=False)
    assert first.shape == (6, 512) and (cache.stats.hits, cache.stats.misses) == (0, 1)
    again = cache.get_or_compute(create_encoder("random_resnet18"), ds, batch_size=4, progress=False)
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    np.testing.assert_array_equal(first, again)
    # the cached numbers are the encoder's
    with torch.inference_mode():
        direct = enc(torch.from_numpy(ds.load("pixels"))).numpy()
    np.testing.assert_allclose(first, direct, rtol=1e-4, atol=1e-5)
    # other weights -> miss
    cache.get_or_compute(create_encoder("random_resnet18", seed=1), ds, progress=False)
    assert cache.stats.misses == 2
    # other data -> miss
    cache.get_or_compute(enc, _dataset(tmp_path / "b", 1), progress=False)
    assert cache.stats.misses == 3
    # other precision -> miss
    cache.get_or_compute(enc, ds, precision="bfloat16", progress=False)
    assert cache.stats.misses == 4
    assert len(cache.entries()) == 4


def test_changed_preprocessing_misses(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    ds = _dataset(tmp_path / "a", 0)
    enc = create_encoder("random_resnet18")
    k1 = cache.key(enc, ds)
    from dataclasses import replace

    enc.preprocessing = replace(enc.preprocessing, resize=64)
    assert cache.key(enc, ds) != k1


def _interrupting(enc, at_call):
    """`enc` whose forward raises KeyboardInterrupt on call `at_call`; counts the frames it embeds."""
    calls = {"n": 0, "frames": 0}
    orig = enc.forward

    def forward(x):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        calls["frames"] += len(x)
        return orig(x)

    enc.forward = forward
    return calls


def test_interrupted_compute_resumes_where_it_stopped(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    ds = _dataset(tmp_path / "a", 0)
    enc = create_encoder("random_resnet18")
    _interrupting(enc, 2)
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(enc, ds, batch_size=3, progress=False)
    assert cache.entries() == []  # no entry until complete
    assert cache.stats.interrupted["done"] == 3 and cache.stats.interrupted["total"] == 6
    again = create_encoder("random_resnet18")
    calls = _interrupting(again, 0)
    result = cache.get_or_compute(again, ds, batch_size=3, progress=False)
    assert calls["frames"] == 3 and cache.stats.resumed == 3  # only the frames not done before
    with torch.inference_mode():
        direct = create_encoder("random_resnet18")(torch.from_numpy(ds.load("pixels"))).numpy()
    np.testing.assert_allclose(result, direct, rtol=1e-4, atol=1e-5)
    assert len(cache.entries()) == 1
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "cache").iterdir())


def test_failure_before_any_row_leaves_nothing(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    enc = create_encoder("random_resnet18")
    _interrupting(enc, 1)
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(enc, _dataset(tmp_path / "a", 0), batch_size=3, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_folders_of_ended_processes_are_removed(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    pid, host, old = _dead_pid(), socket.gethostname(), time.time() - 3 * 24 * 3600

    def temp(name, owner=True, progress=False, age=None):
        path = root / name
        (path / "embeddings.zarr").mkdir(parents=True)
        if owner:
            (path / "owner.json").write_text(json.dumps({"pid": pid, "host": host}))
        if progress:
            (path / "progress.json").write_text(json.dumps({"key": "x", "done": 1, "total": 6}))
        if age is not None:
            for p in path.rglob("*"):
                os.utime(p, (age, age))
            os.utime(path, (age, age))
        return path

    nothing_to_resume = temp(f".tmp-aaaa-{pid}-1")
    old_partial = temp(f".tmp-bbbb-{pid}-2", progress=True, age=old)
    recent_partial = temp(f".tmp-cccc-{pid}-3", progress=True)  # kept: its key's next run resumes it
    legacy_old = temp(".tmp-dddd-1234", owner=False, age=old)  # no owner record, untouched for days
    legacy_recent = temp(".tmp-eeee-1234", owner=False)
    running = temp(f".tmp-ffff-{os.getppid()}-4")  # a live process
    (running / "owner.json").write_text(json.dumps({"pid": os.getppid(), "host": host}))
    taken_over = temp(f".tmp-hhhh-{pid}-6")  # being renamed by a process taking it over
    (taken_over / "owner.json").write_text(json.dumps({"pid": pid + 1, "host": host}))
    other_host = temp(f".tmp-gggg-{pid}-5")
    (other_host / "owner.json").write_text(json.dumps({"pid": pid, "host": host + "-elsewhere"}))
    cache = EmbeddingCache(root)
    cache.get_or_compute(create_encoder("random_resnet18"), _dataset(tmp_path / "a", 0), progress=False)
    left = {p.name for p in root.iterdir() if p.name.startswith(".")}
    assert left == {recent_partial.name, legacy_recent.name, running.name, other_host.name, taken_over.name}
    assert not nothing_to_resume.exists() and not old_partial.exists() and not legacy_old.exists()


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip", "meta"])
def test_damaged_entry_is_computed_again_not_served(tmp_path, damage, monkeypatch):
    monkeypatch.setattr(cache_module, "CHUNK_BYTES", 64 * 512 * 4, raising=False)  # chunks of 64 rows
    cache = EmbeddingCache(tmp_path / "cache")
    ds = _dataset(tmp_path / "a", 0, frames=300)
    enc = create_encoder("random_resnet18")
    first = cache.get_or_compute(enc, ds, batch_size=100, progress=False)
    entry = tmp_path / "cache" / cache.stats.keys[-1]
    chunks = sorted((entry / "embeddings.zarr" / "c").rglob("*"))
    chunks = [c for c in chunks if c.is_file()]
    if damage == "delete":
        chunks[0].unlink()
    elif damage == "truncate":
        chunks[0].write_bytes(chunks[0].read_bytes()[:100])
    elif damage == "flip":  # same size, other bytes
        _flip(chunks[-1])
    else:
        (entry / "meta.json").write_text("{garbled")
    again = cache.get_or_compute(enc, ds, batch_size=100, progress=False)
    assert cache.stats.misses == 2 and cache.stats.hits == 0 and cache.stats.recomputed_damaged == 1
    np.testing.assert_array_equal(again, first)
    assert cache.get_or_compute(enc, ds, progress=False).shape == first.shape and cache.stats.hits == 1


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_spatial_entries_check_chunks_as_they_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "CHUNK_BYTES", 16 * 512 * 4, raising=False)  # chunks of 16 rows
    cache = EmbeddingCache(tmp_path / "cache")
    ds = _dataset(tmp_path / "a", 0, frames=40)
    enc = create_encoder("random_resnet18")
    cache.get_or_compute(enc, ds, spatial=True, batch_size=20, progress=False)
    entry = tmp_path / "cache" / cache.stats.keys[-1]
    arr = cache.get_or_compute(enc, ds, spatial=True, progress=False)
    chunks = sorted(c for c in (entry / "embeddings.zarr" / "c").rglob("*") if c.is_file())
    if len(chunks) > 1:
        np.asarray(arr[:16])  # intact chunks read fine
    _flip(chunks[-1])
    with pytest.raises(DatasetError, match="delete"):
        np.asarray(arr[:])


def test_bad_batch_size_and_missing_arrays_are_clear_errors(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    ds = _dataset(tmp_path / "a", 0)
    enc = create_encoder("random_resnet18")
    with pytest.raises(ConfigError, match="batch_size"):
        cache.get_or_compute(enc, ds, batch_size=0, progress=False)
    with pytest.raises(DatasetError, match="no array 'goal_pixels'.*actions, pixels"):
        cache.get_or_compute(enc, ds, "goal_pixels", progress=False)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_trainable_encoders_are_not_cached(tmp_path):
    with pytest.raises(ConfigError, match="trains with the policy"):
        EmbeddingCache(tmp_path).get_or_compute(create_encoder("e2e_cnn"), _dataset(tmp_path / "a", 0))


def test_a_key_another_live_process_computes_is_waited_for_not_computed_again(tmp_path):
    """Two jobs of one frozen encoder start side by side: the second waits for the first's entry;
    if the first's process ends, or lives on after its computation failed (a sweep's pool worker),
    the second computes the entry itself."""
    import shutil
    import threading

    ds, enc = _dataset(tmp_path / "a", 0), create_encoder("random_resnet18")
    done = EmbeddingCache(tmp_path / "done")
    expected = done.get_or_compute(enc, ds, batch_size=4, progress=False)
    key = done.key(enc, ds)
    for case in ("finishes", "dies", "fails"):
        root = tmp_path / f"cache_{case}"
        root.mkdir()
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        tmp = root / f".tmp-{key}-{other.pid}-1"
        tmp.mkdir()
        (tmp / "owner.json").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                                    "computing": case != "fails"}))
        cache, out = EmbeddingCache(root), {}
        waiter = threading.Thread(target=lambda: out.update(x=cache.get_or_compute(enc, ds, batch_size=4,
                                                                                     progress=False)))
        waiter.start()
        time.sleep(2.5)
        assert waiter.is_alive() == (case != "fails"), case  # waits only for a computation under way
        if case == "finishes":
            shutil.copytree(tmp_path / "done" / key, root / key)  # the other process's entry lands
        other.kill()
        other.wait()
        waiter.join(30)
        np.testing.assert_array_equal(out["x"], expected)
        assert (cache.stats.hits, cache.stats.misses) == ((1, 0) if case == "finishes" else (0, 1)), case
