"""Visual Alignment Testing (paper 001 §III-C): the test, the frozen-run encoder, the record and the CLI."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from vfmbench.analysis.vat import (
    SCHEMA,
    VatConfig,
    VatRecord,
    environment_rates,
    run_vat,
    vat_ttest,
)
from vfmbench.cli import app
from vfmbench.training import FrozenRunEncoder
from vfmbench.utils.errors import ConfigError, DatasetError, VfmbenchError

# paper 001 eq. 4-7 by hand on 5 environments: D = |Y - X|
Y_ALIGNED = [0.8, 0.6, 1.0, 0.8, 0.6]
X_SWAPPED = [0.2, 0.4, 0.2, 0.0, 0.4]  # D = [0.6, 0.2, 0.8, 0.8, 0.2]
X_NULL = [0.6, 0.6, 0.6, 0.4, 1.0]
Y_NULL = [0.6, 0.8, 0.6, 0.4, 0.8]  # D = [0, 0.2, 0, 0, 0.2]
T_CRIT_4 = 2.131847  # Student's t, 4 degrees of freedom, one-sided alpha = 0.05 (tables: 2.132)


def test_ttest_rejects_on_a_constructed_case():
    res = vat_ttest(Y_ALIGNED, X_SWAPPED, delta=0.05, alpha=0.05)
    # mean 0.52; sum of squared deviations .0064+.1024+.0784+.0784+.1024 = .368, s^2 = .368/4 = .092
    assert res.mean_d == pytest.approx(0.52)
    assert res.std_d == pytest.approx(math.sqrt(0.092))
    assert res.t == pytest.approx((0.52 - 0.05) / (math.sqrt(0.092) / math.sqrt(5)))
    assert res.t == pytest.approx(3.46489, abs=1e-5)
    assert res.critical == pytest.approx(T_CRIT_4, abs=1e-6)
    assert res.n == 5 and res.reject and res.p_value < 0.05


def test_ttest_keeps_h0_on_its_null():
    res = vat_ttest(Y_NULL, X_NULL, delta=0.05, alpha=0.05)
    # mean 0.08; squared deviations .0064*3 + .0144*2 = .048, s^2 = .012
    assert res.mean_d == pytest.approx(0.08)
    assert res.t == pytest.approx((0.08 - 0.05) / (math.sqrt(0.012) / math.sqrt(5)))
    assert res.t == pytest.approx(0.612372, abs=1e-6)
    assert not res.reject and res.p_value > 0.05
    # the same differences as the rejected case, but a threshold above them: kept
    assert not vat_ttest(Y_ALIGNED, X_SWAPPED, delta=0.6).reject


def test_ttest_without_spread():
    """Equal D_i: t is +inf above delta (paper 001 Table IV, Real PnP DP-C), -inf below."""
    up = vat_ttest([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert up.t == math.inf and up.reject and up.p_value == 0.0
    same = vat_ttest([0.5, 0.5], [0.5, 0.5])
    assert same.t == -math.inf and not same.reject and same.p_value == 1.0


def test_ttest_bad_input_is_a_clear_error():
    with pytest.raises(ConfigError, match="at least 2 testing environments"):
        vat_ttest([1.0], [0.0])
    with pytest.raises(ConfigError, match="shapes"):
        vat_ttest([1.0, 0.5], [0.0])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        vat_ttest([1.5, 0.5], [0.0, 0.0])
    with pytest.raises(ConfigError, match="alpha"):
        vat_ttest(Y_ALIGNED, X_SWAPPED, alpha=1.0)
    with pytest.raises(ConfigError, match="delta"):
        vat_ttest(Y_ALIGNED, X_SWAPPED, delta=-0.1)


def test_environment_rates():
    assert environment_rates([True, False, True, True, False, False], 3, 2) == [0.5, 1.0, 0.0]
    with pytest.raises(ConfigError, match="not 2 environments x 2"):
        environment_rates([True], 2, 2)


def test_config_refuses_bad_settings_before_any_work(tmp_path, capsys):
    with pytest.raises(ConfigError, match="two tasks"):
        VatConfig(task1="fetch_reach_red").validate()
    with pytest.raises(ConfigError, match="reads 'state'"):
        VatConfig(encoders=["state"]).validate()
    with pytest.raises(ConfigError, match="what VAT builds"):
        VatConfig(encoders=["frozen_run"]).validate()
    with pytest.raises(ConfigError, match="datasets names task 'fetch_push'"):
        VatConfig(datasets={"fetch_push": "x"}).validate()
    out = tmp_path / "out"
    assert app(["analyze", "vat", "--out", str(out), "--encoders", "e2e_cnn,nope"]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    assert app(["analyze", "vat", "--out", str(out), "--task0", "dmc_walker_walk"]) == 2
    assert "defines no success" in capsys.readouterr().err
    assert not out.exists()


def test_frozen_run_needs_a_run():
    from vfmbench.encoders import create_encoder

    with pytest.raises(ConfigError, match="encoder_options.run"):
        create_encoder("frozen_run")


@pytest.fixture(scope="module")
def small_vat(tmp_path_factory):
    """The CLI end to end at toy sizes (2 episodes per task, 5 steps, 2 environments x 1 episode), e2e_cnn."""
    out = tmp_path_factory.mktemp("vat") / "out"
    argv = ["analyze", "vat", "--out", str(out), "--encoders", "e2e_cnn", "--episodes", "2", "--environments", "2",
            "--episodes-per-environment", "1", "--steps", "5", "--trainable-steps", "5", "--device", "cpu",
            "--cache", str(out / "cache"), "--no-progress"]
    t0 = time.time()
    assert app(argv) == 0
    return out, argv, time.time() - t0


def test_cli_end_to_end(small_vat, capsys):
    from vfmbench.analysis.records import read_record

    out, argv, _ = small_vat
    record = read_record(out / "vat.json")
    assert isinstance(record, VatRecord) and record.schema == SCHEMA
    assert record.figures == ["vat.png"] and (out / "vat.png").stat().st_size > 0
    row = record.rows[0]
    assert (row.encoder, row.trainable, row.pi0.task, row.pi1.task, row.pi01.task) == (
        "e2e_cnn", True, "fetch_reach_red", "fetch_reach_blue", "fetch_reach_blue")
    assert row.pi01.seed == row.pi1.seed + 1 and len(row.pi1.environment_success) == 2
    assert row.test == vat_ttest(row.pi1.environment_success, row.pi01.environment_success, 0.05, 0.05)
    assert record.budget["episodes"] == {"fetch_reach_red": 2, "fetch_reach_blue": 2}
    assert VatRecord.from_dict(json.loads((out / "vat.json").read_text())) == record
    table = record.markdown()
    assert "| e2e_cnn (end to end) |" in table and "pi0->1 on T1 (X)" in table
    # pi0->1 was trained through the job unit on pi0's encoder, frozen
    config = json.loads((out / "runs/e2e_cnn/pi01/config.json").read_text())["spec"]
    assert config["encoder"] == "frozen_run" and config["encoder_options"]["run"] == str((out / "runs/e2e_cnn/pi0").resolve())


def test_rerun_reads_finished_runs_back(small_vat, capsys):
    out, argv, first = small_vat
    before = json.loads((out / "vat.json").read_text())
    t0 = time.time()
    assert app(argv) == 0
    after = json.loads((out / "vat.json").read_text())
    assert time.time() - t0 < first / 2
    for role in ("pi0", "pi1", "pi01"):
        assert after["rows"][0][role] == before["rows"][0][role]


def test_frozen_run_encoder_is_pi0s_encoder_frozen(small_vat):
    from vfmbench.training import load_agent

    out = small_vat[0]
    pi0 = out / "runs/e2e_cnn/pi0"
    source, _ = load_agent(pi0)
    options = json.loads((out / "runs/e2e_cnn/pi01/config.json").read_text())["spec"]["encoder_options"]
    enc = FrozenRunEncoder(**options)
    enc.train()  # stays frozen and unaugmented
    assert not enc.trainable and not any(p.requires_grad for p in enc.parameters())
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 84, 84, 3), dtype=np.uint8))
    with torch.no_grad():
        assert torch.equal(enc(frames), source.encoder(frames))
    agent, _ = load_agent(out / "runs/e2e_cnn/pi01")  # pi0->1 rebuilds f0 from pi0's folder
    with torch.no_grad():
        assert torch.equal(agent.encoder(frames), source.encoder(frames))
    with pytest.raises(VfmbenchError, match="other weights"):
        FrozenRunEncoder(options["run"], options["step"], sha256="0" * 64)


def test_record_from_bad_json_is_a_clear_error():
    with pytest.raises(DatasetError, match="not a VAT record"):
        VatRecord.from_dict({"schema": "vfmbench.analysis.phid/1"})
    with pytest.raises(DatasetError, match="malformed"):
        VatRecord.from_dict({"schema": SCHEMA, "rows": [{}]})


def test_frozen_control_with_pi1s_seed_is_pi1_exactly(tmp_path):
    """For a frozen encoder f0 = f1 = f*: with pi1's seed for the new head, pi0->1 is pi1 bit for bit
    (the same features through frozen_run, the same head training), so every D_i is 0 and H0 stands.
    Also runs on datasets given to run_vat instead of collecting."""
    from vfmbench.data.collection import CollectConfig, collect

    data = {t: str(collect(CollectConfig(task=t, episodes=2), tmp_path / t, progress=False).root)
            for t in ("fetch_reach_red", "fetch_reach_blue")}
    config = VatConfig(encoders=["imagenet_efficientnet_lite0"], datasets=data, environments=2,
                       episodes_per_environment=1, steps=20, swap_seed=0, device="cpu",
                       cache_dir=str(tmp_path / "cache"))
    record = run_vat(config, tmp_path / "out", progress=False)
    row = record.rows[0]
    assert record.datasets == data and not (tmp_path / "out" / "data").exists()
    assert not row.trainable and row.pi01.seed == row.pi1.seed == 0
    assert row.pi01.environment_success == row.pi1.environment_success
    assert row.test.mean_d == 0.0 and row.test.t == -math.inf and not row.test.reject


def test_tasks_that_are_not_a_vat_pair_are_refused_before_any_work(tmp_path, capsys):
    """Defect: fetch_reach / fetch_push ran (rc 0) though their frames differ."""
    from vfmbench.analysis.vat import check_task_pair

    out = tmp_path / "out"
    argv = ["analyze", "vat", "--out", str(out), "--task0", "fetch_reach", "--task1", "fetch_push", "--encoders",
            "random_resnet18", "--episodes", "2", "--environments", "2", "--episodes-per-environment", "1",
            "--steps", "5", "--device", "cpu"]
    assert app(argv) == 2
    err = capsys.readouterr().err
    assert "fetch_reach and fetch_push are not a VAT pair" in err and "--no-pair-check" in err
    assert not out.exists()
    check_task_pair("fetch_reach_red", "fetch_reach_blue")  # the real pair passes
    assert VatConfig().check_pair and VatConfig().min_pi0_success == 0.5


def test_a_pi0_that_did_not_learn_t0_is_marked_not_meaningful(small_vat, capsys):
    """Defect: a pi0 with low success on T0 gave a verdict like any other."""
    from dataclasses import replace

    from vfmbench.analysis.vat import plot_vat

    out, argv, _ = small_vat
    record = VatRecord.from_dict(json.loads((out / "vat.json").read_text()))
    rate = record.rows[0].pi0.success_rate
    learned, failed = replace(record, min_pi0_success=0.0), replace(record, min_pi0_success=rate + 0.01)
    assert learned.warnings() == [] and "not meaningful" not in learned.markdown()
    table = failed.markdown()
    assert f"| e2e_cnn (end to end) | {rate:.2f} (did not learn T0) |" in table
    assert "| not meaningful |" in table
    assert (f"Warning: e2e_cnn: pi0 did not learn T0 (success {rate:.2f} on fetch_reach_red, below {rate + 0.01}): "
            "the test is not meaningful.") in table
    assert plot_vat(failed, out / "failed.png").stat().st_size > 0
    # the command warns on stderr and records its threshold (a rerun reads every run back)
    assert app([*argv, "--min-pi0-success", "1"]) == 0
    err = capsys.readouterr().err
    assert ("warning: VAT e2e_cnn: pi0 did not learn T0" in err) == (rate < 1.0)
    assert VatRecord.from_dict(json.loads((out / "vat.json").read_text())).min_pi0_success == 1.0


def test_saliency_explains_a_vat_pi01_run(small_vat, tmp_path, capsys):
    """Defect: saliency refused pi0->1 (a frozen_run encoder) with jargon; it explains it through
    the source run's encoder."""
    from vfmbench.analysis.records import read_record

    out = small_vat[0]
    dest = tmp_path / "sal"
    assert app(["analyze", "saliency", "--run", str(out / "runs/e2e_cnn/pi01"), "--out", str(dest), "--episodes", "1",
                "--envs", "1", "--every", "20", "--figure-steps", "1", "--device", "cpu", "--no-progress"]) == 0
    record = read_record(dest / "saliency.json")
    assert record.frames >= 1 and record.encoder == "frozen_run" and math.isfinite(record.completeness_gap)
    maps = np.load(dest / "saliency.npz")["saliency"]
    assert maps.shape[0] == record.frames and np.abs(maps).sum() > 0
