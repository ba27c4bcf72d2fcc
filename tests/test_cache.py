import numpy as np
import pytest
import torch

from vfmbench.cache import EmbeddingCache
from vfmbench.data.episodes import EpisodeWriter
from vfmbench.encoders import create_encoder
from vfmbench.utils.errors import ConfigError


def _dataset(root, seed):
    rng = np.random.default_rng(seed)
    w = EpisodeWriter(root, {"task": {"task": "synthetic", "state_dim": 3}})
    w.append({"pixels": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
              "actions": np.zeros((6, 2), np.float32)}, {}, {"seed": seed})
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


def test_interrupted_compute_leaves_no_entry(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    ds = _dataset(tmp_path / "a", 0)
    enc = create_encoder("random_resnet18")
    calls = {"n": 0}
    orig = enc.forward

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(x)

    enc.forward = failing
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(enc, ds, batch_size=3, progress=False)
    assert cache.entries() == [] and not any(p.name.startswith(".tmp") for p in (tmp_path / "cache").iterdir())


def test_trainable_encoders_are_not_cached(tmp_path):
    with pytest.raises(ConfigError, match="trains with the policy"):
        EmbeddingCache(tmp_path).get_or_compute(create_encoder("e2e_cnn"), _dataset(tmp_path / "a", 0))
