"""PHID0 (paper 000 §7.2): the MST-based estimator recovers known intrinsic dimensions, the paper's
standardised score, and `vfmbench analyze phid` end to end on real fetch_push trajectories."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vfmbench.utils.errors import ConfigError

from vfmbench.analysis.phid import (
    PhidEstimator,
    PhidRecord,
    PhidResult,
    distinct_points,
    mst_edge_lengths,
    pair_deltas,
    standardised_score,
)
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


@pytest.fixture(scope="module")
def phid_run(tmp_path_factory):
    """The CLI on fetch_push, 3 trajectories, state and random_resnet18; returns (out, stdout, stderr)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("phid")
    out = root / "phid"
    argv = ["analyze", "phid", "--encoders", "state,random_resnet18", "--task", "fetch_push", "--shift", "distractor",
            "--trajectories", "3", "--out", str(out), "--device", "cpu", "--no-progress",
            "--cache", str(root / "cache")]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert app(argv) == 0
    return out, argv, stdout.getvalue(), stderr.getvalue()


def test_cli_end_to_end_on_fetch_push(phid_run):
    from vfmbench.analysis.records import read_record

    out, _, printed, _ = phid_run
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


def test_still_trajectories_and_non_finite_estimates_are_excluded_not_nan():
    """Defect: one trajectory that barely moves made every PHID0* nan. Repeated points are
    removed before the fit; a cloud with too few distinct points is nan (undefined), and such
    pairs leave the score instead of poisoning it; identical embeddings are Delta 0 even when
    their PHID0 is inf."""
    rng = np.random.default_rng(0)
    moving = _embedded(rng.uniform(size=(60, 2)), rng)
    est = PhidEstimator(min_points=10, reruns=3)
    # the same cloud with each point repeated (frames where nothing moved): the same estimate
    repeated = np.concatenate([moving, moving[:30], moving + 1e-12])
    assert len(distinct_points(repeated)) == 60
    assert math.isclose(est.estimate(repeated, seed=0), est.estimate(moving, seed=0), rel_tol=1e-9)
    # a still trajectory: 5 distinct poses over 60 frames -> undefined, not a number
    still = np.repeat(moving[:5], 12, axis=0)
    assert math.isnan(est.estimate(still, seed=0))
    assert math.isnan(est.estimate(np.zeros((60, 4)), seed=0))
    # pairs: non-finite ones are left out; identical embeddings give 0 even for inf/nan estimates
    z1 = np.array([3.0, math.inf, 5.0, math.nan, math.inf])
    z2 = np.array([3.5, 4.0, 5.0, math.nan, math.inf])
    delta, usable = pair_deltas(z1, z2, 10, identical=[False, False, False, True, False])
    assert usable.tolist() == [True, False, True, True, False]
    assert delta[usable].tolist() == [0.05, 0.0, 0.0]
    with np.errstate(all="raise"):  # no RuntimeWarning from inf - inf
        mean, s, score = standardised_score(z1, z2, 10, identical=[False, False, False, True, False])
    assert math.isclose(mean, 0.05 / 3) and math.isfinite(score)
    assert standardised_score([math.inf] * 3, [math.inf] * 3, 8, identical=[True] * 3) == (0.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match="at least 2 trajectories with finite PHID0, got 1 of 3"):
        standardised_score([1.0, math.inf, math.nan], [2.0, 3.0, 4.0], 8)


def test_a_record_with_exclusions_says_so_in_table_and_caption(tmp_path):
    """A score from fewer trajectories names the seeds left out; an undefined score is shown as such."""
    est = PhidEstimator()
    ok = PhidResult("enc_a", 8, 0.1, 0.05, 5.0, [2.0, math.inf, 3.0], [2.5, 4.0, 3.1], 1.0, excluded_seeds=[11])
    bad = PhidResult("enc|b", 8, math.nan, math.nan, math.nan, [math.nan, math.inf, 3.0], [2.0, 4.0, 3.5], 1.0,
                     excluded_seeds=[10, 11])
    record = PhidRecord(task="fetch_reach", shift="distractor", trajectories=3, seed=10, estimator=est,
                        max_state_difference=0.0, datasets={}, results=[ok, bad])
    table = record.markdown()
    assert "| enc_a | 8 | 2 of 3 | 2.50 | 2.80 | 0.1 | 0.05 | 5.00 |" in table
    assert "| enc\\|b | 8 | 1 of 3 | 3.00 | 3.50 | n/a | n/a | not defined (fewer than 2 usable trajectories) |" in table
    assert "enc_a: 1 of 3 trajectories left out (seeds 11)" in table and "nan" not in table
    assert "enc|b: 2 of 3 trajectories left out (seeds 10, 11)" in table and "the score is not defined" in table
    assert PhidRecord.from_dict(json.loads(json.dumps(record.to_dict()))).markdown() == table
    from vfmbench.analysis.phid import plot_phid

    frame = np.zeros((8, 8, 3), np.uint8)
    assert plot_phid(record, frame, frame, tmp_path / "p.png").stat().st_size > 0


def test_cli_leaves_out_a_non_finite_trajectory_with_a_warning(phid_run, tmp_path, monkeypatch, capsys):
    """Rerun on the same trajectories and cache with trajectory 1's PHID0 forced to inf: state
    (identical embeddings) still scores 0 from all 3; random_resnet18 scores from 2 and records seed 1."""
    from vfmbench.analysis.records import read_record

    out, argv, _, _ = phid_run
    real = PhidEstimator.estimate
    monkeypatch.setattr(PhidEstimator, "estimate",
                        lambda self, points, seed=0: math.inf if seed == 1 else real(self, points, seed))
    argv = [a if a != str(out) else str(tmp_path / "again") for a in argv] + ["--data", str(out / "trajectories")]
    assert app(argv) == 0
    captured = capsys.readouterr()
    assert "warning: PHID0 random_resnet18: 1 of 3 trajectories have no finite PHID0 (seeds 1" in captured.err
    assert "state" not in captured.err
    state, resnet = read_record(tmp_path / "again" / "phid.json").results
    assert state.score == 0.0 and state.excluded_seeds == [] and state.used == 3
    assert resnet.excluded_seeds == [1] and resnet.used == 2 and math.isfinite(resnet.score) and resnet.defined
    assert "| random_resnet18 | 512 | 2 of 3 |" in captured.out and "nan" not in captured.out
