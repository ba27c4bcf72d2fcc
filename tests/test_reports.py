"""Summaries over seeds: mean, std, a Student-t 95% interval and Welch's test against the best."""

import numpy as np
import pytest

from vfmbench.evaluation import EvalResult
from vfmbench.experiments import RunRecord
from vfmbench.reports import format_table, summarize
from vfmbench.training import TrainRecord


def _record(encoder: str, seed: int, success: float) -> RunRecord:
    train = TrainRecord(schema="vfmbench.train/1", encoder_label=encoder, pretrained=False, goal_conditioned=False,
                        steps=100, batch_size=64, augment="cached", evals=[], best_k=3, best_k_mean_success=None,
                        train_seconds=1.0, prepare_seconds=0.0, device="cpu")
    ev = EvalResult(success_rate=success, success_any_rate=success, episodes=20, seeds=list(range(20)),
                    successes=[], seconds=1.0)
    return RunRecord(schema="vfmbench.run/1", task="t", encoder=encoder, encoder_label=encoder, pretrained=False,
                     method="bc", goal_conditioned=False, seed=seed, train=train, evaluation=ev, robustness=[],
                     run_dir="r", host="h", seconds=1.0)


def test_mean_std_and_t_interval_over_seeds():
    rows = {r.encoder: r for r in summarize([_record("a", s, v) for s, v in enumerate([1.0, 0.9, 0.85])])}
    a = rows["a"]
    x = np.array([1.0, 0.9, 0.85])
    half = 4.302652729911275 * x.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert a.success_mean == pytest.approx(x.mean(), abs=1e-4) and a.success_std == pytest.approx(x.std(), abs=1e-4)
    assert x.mean() + half > 1.0  # the t interval passes 1: clipped to the possible success rates
    assert a.ci95 == pytest.approx((x.mean() - half, 1.0), abs=1e-4)
    assert summarize([_record("b", 0, 0.5)])[0].ci95 is None  # one seed: no interval


def test_differences_from_the_best_are_marked_by_welchs_test():
    records = [_record("best", s, v) for s, v in enumerate([0.9, 0.95, 0.92])]
    records += [_record("close", s, v) for s, v in enumerate([0.88, 0.97, 0.85])]
    records += [_record("worse", s, v) for s, v in enumerate([0.4, 0.45, 0.42])]
    rows = {r.encoder: r for r in summarize(records)}
    assert rows["best"].vs_best == "best" and rows["close"].vs_best == "n.s."
    assert rows["worse"].vs_best.startswith("p") and rows["worse"].vs_best != "n.s."
    table = format_table(list(rows.values()))
    assert "95% CI" in table and "vs best" in table and "n.s." in table and "cached" in table


def test_welch_test_against_a_constant_best_row_gives_scipys_p_without_a_warning():
    import warnings

    import numpy as np
    from scipy import stats

    from vfmbench.reports.tables import _vs_best

    x, best = np.array([0.35, 0.35, 0.45]), np.array([1.0, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _vs_best(x, best, False) == "p=0.003"
        assert _vs_best(np.array([0.5, 0.6, 0.55]), np.array([0.7, 0.8, 0.9]), False) == "p=0.032"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert round(float(stats.ttest_ind(x, best, equal_var=False).pvalue), 3) == 0.003


def test_demo_report_includes_analysis_records_found_under_its_folder(tmp_path):
    """`vfmbench analyze ... --out DEMO/analysis/NAME`: the demo's report.md shows each record's
    table and figures (paths relative to the report); a damaged record is named, not fatal."""
    import json

    from vfmbench.reports.tables import _analysis_lines

    assert _analysis_lines(tmp_path) == []
    good = tmp_path / "analysis" / "sal"
    good.mkdir(parents=True)
    (good / "saliency.json").write_text(json.dumps(dict(
        schema="vfmbench.analysis.saliency/1", run="r", checkpoint_step=2, task="fetch_reach", encoder="e2e_cnn",
        trainable=True, method="bc", target="norm", episodes=1, seeds=[1], every=5, frames=2, frame_size=[32, 32],
        input_size=[32, 32], successes=[False], terms={"conv": 5}, spatial_terms=5, completeness_gap=0.1,
        output_mean=0.3, mask_mass=0.4, mask_area=0.1, seconds=1.0, figures=["saliency.png"])))
    bad = tmp_path / "analysis" / "broken"
    bad.mkdir()
    (bad / "phid.json").write_text('{"schema": "vfmbench.analysis.phid/1", "tas')
    text = "\n".join(_analysis_lines(tmp_path))
    assert "## Analyses" in text and "### FullGrad saliency" in text and "0.40 of the saliency on 0.10 of the frame" in text
    assert "missing next to it: saliency.png" in text  # listed, not written
    (good / "saliency.png").write_bytes(b"png")
    text = "\n".join(_analysis_lines(tmp_path))
    assert "![saliency.png](analysis/sal/saliency.png)" in text and "missing next to it" not in text
    assert "analysis/broken/phid.json`: not included" in text


def test_demo_report_shows_drops_as_clean_minus_shifted_with_the_budget_and_a_plot(tmp_path):
    """Defect: the demo report printed 0 - drop (negative when the policy got worse) and had no
    robustness plot."""
    from vfmbench.evaluation.robustness import ShiftResult
    from vfmbench.experiments.demo import DatasetInfo, DemoConfig, DemoResults
    from vfmbench.reports import DROP, summarize_robustness
    from vfmbench.reports.tables import write_report

    records = []
    for seed in range(2):
        r = _record("a", seed, 0.8)
        r.robustness = [ShiftResult("none", 0.8, 0.8, 0.0, 0.0, 20, 1.0, {}),
                        ShiftResult("distractor", 0.6, 0.6, 0.2, 0.05, 20, 1.0, {})]
        records.append(r)
    doc = DemoResults(schema="vfmbench.results/2", created="now", seconds=1.0, config=DemoConfig(),
                      dataset=DatasetInfo("data", 10, 500, "f"), records=records, summary=summarize(records),
                      robustness_summary=summarize_robustness(records))
    text = write_report(doc, tmp_path).read_text()
    assert "0.60 (drop +0.20)" in text and DROP in text
    robustness_table = text.split("## Under shifts")[1]
    assert "| steps" in robustness_table and "cached" in robustness_table  # the budget of each row
    assert "![success per shift per encoder](robustness.png)" in text and (tmp_path / "robustness.png").is_file()
