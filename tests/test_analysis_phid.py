"""PHID0 (paper 000 §7.2): the MST-based estimator recovers known intrinsic dimensions, the paper's
standardised score, and `vfmbench analyze phid` end to end on real fetch_push trajectories."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vfmbench.analysis.phid import PhidEstimator, mst_edge_lengths, standardised_score
from vfmbench.cli import app


def _embedded(x: np.ndarray, rng: np.random.Generator, ambient: int = 50) -> np.ndarray:
    """`x [n, k]` placed in R^ambient by a random rotation (an isometry: distances unchanged)."""
    q, _ = np.linalg.qr(rng.normal(size=(ambient, ambient)))
    return x @ q[: x.shape[1]]


def test_mst_edges_are_the_pH0_death_radii():
    line = np.array([[0.0], [1.0], [3.0], [3.0], [7.0]])  # a repeated point gives a bar of length 0
    assert sorted(mst_edge_lengths(line)) == [0.0, 1.0, 2.0, 4.0]
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    assert np.allclose(sorted(mst_edge_lengths(square)), [1, 1, 1])


@pytest.mark.parametrize("shape, dim, tol", [("circle", 1, 0.15), ("plane", 2, 0.3), ("ball", 3, 0.45)])
def test_estimator_recovers_known_intrinsic_dimension(shape, dim, tol):
    rng = np.random.default_rng(0)
    n = 800
    if shape == "circle":
        t = rng.uniform(0, 2 * np.pi, n)
        x = np.c_[np.cos(t), np.sin(t)]
    elif shape == "plane":
        x = rng.uniform(-1, 1, (n, 2))
    else:
        g = rng.normal(size=(n, 3))
        x = g / np.linalg.norm(g, axis=1, keepdims=True) * rng.uniform(0, 1, (n, 1)) ** (1 / 3)
    estimate = PhidEstimator(min_points=100, sizes=8, reruns=5).estimate(_embedded(x, rng), seed=0)
    assert abs(estimate - dim) < tol, (shape, estimate)


def test_estimator_is_deterministic_and_scale_free():
    x = _embedded(np.random.default_rng(1).uniform(size=(300, 2)), np.random.default_rng(2))
    est = PhidEstimator(min_points=30)
    assert est.estimate(x, seed=3) == est.estimate(x, seed=3)
    assert math.isclose(est.estimate(x, seed=3), est.estimate(10 * x, seed=3), rel_tol=1e-9)


def test_standardised_score_is_the_papers_formula():
    z1, z2, d = np.array([3.0, 4.0, 5.0]), np.array([3.5, 5.0, 5.0]), 16
    delta = np.array([0.5, 1.0, 0.0]) / d
    mean, s, score = standardised_score(z1, z2, d)
    assert math.isclose(mean, delta.mean()) and math.isclose(s, delta.std(ddof=1))
    assert math.isclose(score, delta.mean() / (delta.std(ddof=1) / math.sqrt(d)))
    assert standardised_score(z1, z1, d) == (0.0, 0.0, 0.0)  # no change at all scores 0


def test_bad_settings_are_clear_errors():
    from vfmbench.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="min_points"):
        PhidEstimator(min_points=10).estimate(np.zeros((8, 3)))
    with pytest.raises(ConfigError, match="alpha"):
        PhidEstimator(alpha=0).validate()


def test_cli_refuses_unknown_trainable_encoders_and_no_shift(tmp_path, capsys):
    base = ["analyze", "phid", "--trajectories", "2", "--out", str(tmp_path / "out")]
    assert app([*base, "--encoders", "state,not_an_encoder"]) == 2
    assert "unknown encoder 'not_an_encoder'" in capsys.readouterr().err
    assert app([*base, "--encoders", "e2e_cnn"]) == 2
    err = capsys.readouterr().err
    assert "e2e_cnn" in err and "frozen encoder" in err
    assert app([*base, "--encoders", "state", "--shift", "none"]) == 2
    assert "name a shift" in capsys.readouterr().err
    assert app([*base, "--encoders", "dinov2_vits14"]) == 2  # no weights installed in the test home
    assert "vfmbench weights download dinov2_vits14" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any collection


def test_cli_end_to_end_on_fetch_push(tmp_path, capsys):
    from vfmbench.analysis.records import read_record

    out = tmp_path / "phid"
    argv = ["analyze", "phid", "--encoders", "state,random_resnet18", "--task", "fetch_push", "--shift", "distractor",
            "--trajectories", "3", "--out", str(out), "--device", "cpu", "--no-progress"]
    assert app(argv) == 0
    printed = capsys.readouterr().out
    assert "| state | 28 |" in printed
    data = json.loads((out / "phid.json").read_text())
    assert data["schema"] == "vfmbench.analysis.phid/1"
    record = read_record(out / "phid.json")
    assert record.to_dict() == data and record.figures == ["phid.png"] and (out / "phid.png").stat().st_size > 0
    assert record.max_state_difference == 0.0  # distractors are visual only: the same trajectories
    state, resnet = record.results
    assert state.encoder == "state" and state.mean_delta == 0.0 and state.score == 0.0
    assert len(resnet.phid_clean) == 3 and all(1.0 < z < 50 for z in resnet.phid_clean)
    assert resnet.embed_dim == 512 and resnet.mean_delta > 0  # the distractor changes the pixels' embeddings
    assert "| random_resnet18 | 512 |" in record.markdown()
