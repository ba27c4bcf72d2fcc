"""The HTML report: tables and figures from index records and analysis records, checked in headless Chromium."""

import re
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np
import pytest

from vfmbench.cli import app
from vfmbench.evaluation import EvalResult
from vfmbench.evaluation.robustness import ShiftResult
from vfmbench.experiments import RunRecord
from vfmbench.experiments.grid import GridSpec, expand
from vfmbench.experiments.index import RunsIndex
from vfmbench.reports.html import ReportInput, build_report
from vfmbench.training import TrainRecord
from vfmbench.utils.config import from_dict


def _record(job, success):
    train = TrainRecord(schema="vfmbench.train/1", encoder_label=job.encoder, pretrained=False, goal_conditioned=False,
                        steps=300, batch_size=256, augment="cached", evals=[], best_k=3, best_k_mean_success=None,
                        train_seconds=1.0, prepare_seconds=0.0, device="cpu")
    ev = EvalResult(success_rate=success, success_any_rate=success, episodes=10, seeds=list(range(10)), successes=[],
                    seconds=1.0)
    rob = [ShiftResult(shift="none", success_rate=success, success_any_rate=success, drop=0.0, drop_se=0.0,
                       episodes=10, seconds=1.0, shift_options={}),
           ShiftResult(shift="distractor", success_rate=success - 0.2, success_any_rate=success, drop=0.2, drop_se=0.05,
                       episodes=10, seconds=1.0, shift_options={})]
    return RunRecord(schema="vfmbench.run/1", task=job.task, encoder=job.encoder, encoder_label=job.encoder,
                     pretrained=False, method=job.method, goal_conditioned=False, seed=job.seed, train=train,
                     evaluation=ev, robustness=rob, run_dir=job.spec.out, host="h", seconds=1.0)


@dataclass
class FakeAnalysisRecord:
    """Stands in for an analysis record type (`vfmbench.analysis.records.AnalysisRecord`)."""

    schema: str
    figures: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data):
        return cls(schema=data["schema"], figures=data["figures"])

    def to_dict(self):
        return {"schema": self.schema, "figures": self.figures}

    def markdown(self):
        return "| encoder | score |\n|---|---|\n| state | 0.93 |\n\nThe **fake** analysis."


@pytest.fixture
def index_with_runs(tmp_path):
    grid = from_dict(GridSpec, {"name": "rep", "axes": {"tasks": ["fetch_reach"], "encoders": ["state", "e2e_cnn"],
                                                        "seeds": [0, 1, 2]},
                                "dataset": {"paths": {"fetch_reach": str(tmp_path / "data")}}})
    jobs = expand(grid, tmp_path / "sweep")
    rng = np.random.default_rng(0)
    db = tmp_path / "runs.sqlite"
    with RunsIndex(db) as index:
        index.add(jobs)
        for job in jobs[:-1]:
            index.claim(job.spec_hash)
            index.finish(job.spec_hash, _record(job, (0.9 if job.encoder == "state" else 0.5) + 0.05 * rng.random()))
        index.claim(jobs[-1].spec_hash)
        index.fail(jobs[-1].spec_hash, "RuntimeError: <the worker> died\ntraceback")
    return db


@pytest.fixture
def analysis_folder(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vfmbench.analysis import records

    monkeypatch.setitem(records.RECORD_TYPES, "vat", f"{__name__}:FakeAnalysisRecord")
    folder = tmp_path / "analyses" / "vat_run"
    folder.mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(folder / "vat.png")
    plt.close(fig)
    (folder / "vat.json").write_text('{"schema": "vfmbench.analysis.vat/1", "figures": ["vat.png"]}')
    return tmp_path / "analyses"


def test_report_command_renders_tables_figures_and_analyses(index_with_runs, analysis_folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert app(["report", "--runs", "sweep=rep", "--out", str(out), "--index", str(index_with_runs),
                "--analyses", str(analysis_folder)]) == 0
    assert "1 analysis record(s)" in capsys.readouterr().out
    page = re.sub(r"<td[^>]*>", "<td>", (out / "index.html").read_text())
    # the summary: one row per encoder with mean ± std, CI, seeds and the training budget
    assert re.search(r"<td>state</td>\s*<td>bc</td>\s*<td>0\.9\d ± 0\.0\d</td>\s*<td>\[0\.\d\d, 0\.\d\d\]</td>", page)
    assert "<td>300</td>" in page and "<td>256</td>" in page and "<td>cached</td>" in page
    assert "distractor" in page and "(drop +0.20)" in page  # robustness, with the drop against the clean task
    assert "&lt;the worker&gt; died" in page  # the failed job, escaped
    assert "<strong>fake</strong>" in page and "analyses/0-vat/vat.png" in page
    for name in ("success.png", "robustness.png", "analyses/0-vat/vat.png", "report.md"):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    assert re.search(r"\| fetch_reach\s+\| state\s+\| bc\s+\|", md)
    assert "![success per encoder](success.png)" in md and "The **fake** analysis." in md
    assert app(["report", "--runs", "sweep=nothing", "--out", str(out), "--index", str(index_with_runs)]) == 2


def test_report_from_records_needs_no_index(tmp_path):
    out = build_report(ReportInput(title="empty"), tmp_path / "r")
    assert out.html.is_file() and out.figures == []


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium here (apt-get install chromium)")
def test_report_opens_in_headless_chromium(index_with_runs, analysis_folder, tmp_path):
    out = tmp_path / "report"
    assert app(["report", "--out", str(out), "--index", str(index_with_runs), "--analyses", str(analysis_folder)]) == 0
    # a copy of the page that counts, once loaded, the images the browser could decode
    probe = out / "probe.html"
    probe.write_text((out / "index.html").read_text().replace(
        "</body>", "<script>addEventListener('load', () => { document.body.dataset.loaded = "
                   "[...document.images].filter(i => i.naturalWidth > 0).length; "
                   "document.body.dataset.tables = document.querySelectorAll('table').length; });</script></body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--virtual-time-budget=5000"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-loaded="3"' in dom and re.search(r'data-tables="[3-9]"', dom), dom[:2000]
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", *flags, "--window-size=1200,1800", f"--screenshot={shot}", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1800, 1200) and pixels.std() > 0.05  # a page, not a blank


def test_rl_runs_render_as_return_tables(tmp_path):
    from vfmbench.rl.job import RL_RECORD_SCHEMA, RLRunRecord, ShiftReturns
    from vfmbench.rl.loop import RLTrainRecord

    grid = from_dict(GridSpec, {"name": "rl", "kind": "rl", "axes": {
        "tasks": ["dmc_cartpole_swingup"], "encoders": ["default"], "methods": ["drqv2"], "masks": ["none", "oracle"],
        "shifts": ["color_hard"], "seeds": [0]}, "rl": {"frames": 1000}})
    jobs = expand(grid, tmp_path / "sweep")
    db = tmp_path / "runs.sqlite"
    with RunsIndex(db) as index:
        index.add(jobs)
        for job, ret in zip(jobs, (150.0, 700.0)):
            mask = None if job.mask == "none" else job.mask
            train = RLTrainRecord(task=job.task, agent="drqv2", encoder="conv", encoder_label="conv", pretrained=False,
                                  mask=mask, seed=0, frames=1000, target_frames=1000, steps=500, episodes=1, updates=1,
                                  wall_seconds=1.0, frames_per_second=1000.0, device="cpu", complete=True)
            evals = [ShiftReturns(shift=s, frame=1000, mean=ret - 10 * i, std=5.0, episodes=2, seed=0,
                                  returns=[ret, ret]) for i, s in enumerate(["none", "color_hard"])]
            index.claim(job.spec_hash)
            index.finish(job.spec_hash, RLRunRecord(RL_RECORD_SCHEMA, job.task, "drqv2", "conv", mask, 0, train, evals,
                                                    job.spec.out, "h", 1.0))
        assert [type(r.record()).__name__ for r in index.rows()] == ["RLRunRecord", "RLRunRecord"]
    out = tmp_path / "report"
    assert app(["report", "--runs", "kind=rl", "--out", str(out), "--index", str(db)]) == 0
    page = (out / "index.html").read_text()
    assert "Online RL: return under color_hard" in page and "DrQ-v2 + SAM-G (oracle)" in page and "690" in page


def _sweep_rows(db, name, out, seeds, success, over=None, steps=300):
    """Record a done sweep of the state encoder into `db`: run folders under `out`, `over` grid keys."""
    import dataclasses

    grid = from_dict(GridSpec, {"name": name, "axes": {"tasks": ["fetch_reach"], "encoders": ["state"], "seeds": seeds},
                                "dataset": {"paths": {"fetch_reach": "/nonexistent/data"}}, **(over or {})})
    jobs = expand(grid, out)
    with RunsIndex(db) as index:
        index.add(jobs)
        for job in jobs:
            rec = _record(job, success[job.seed])
            rec.train = dataclasses.replace(rec.train, steps=steps)
            index.claim(job.spec_hash)
            index.finish(job.spec_hash, rec)
    return jobs


def test_report_counts_each_run_once_and_never_pools_budgets(tmp_path, capsys):
    from vfmbench.reports.tables import confidence_interval, summarize, unique_runs

    db = tmp_path / "runs.sqlite"
    sw = tmp_path / "sw1"
    first = _sweep_rows(db, "example", sw, [0, 1], {0: 0.9, 1: 0.8}, {"axes": {
        "tasks": ["fetch_reach"], "encoders": ["state"], "seeds": [0, 1], "shifts": ["distractor"]}})
    # the same folders again, with a changed spec (no shifts, one more seed): new rows, the same runs
    second = _sweep_rows(db, "example", sw, [0, 1, 2], {0: 1.0, 1: 1.0, 2: 0.0})
    assert {j.spec.out for j in first} < {j.spec.out for j in second}
    # another budget (train.steps=3) in another folder: its own row, not pooled under 300 steps
    _sweep_rows(db, "example", tmp_path / "sw2", [0, 1], {0: 0.1, 1: 0.2}, {"train": {"steps": 3}}, steps=3)
    out = tmp_path / "r"
    assert app(["report", "--runs", "sweep=example", "--out", str(out), "--index", str(db)]) == 0
    err = capsys.readouterr().err
    assert "2 done row(s) record a run already counted" in err and "index rows 1, 2" in err
    md = (out / "report.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith("| fetch_reach") and "± " in line]
    by_steps = {r[7]: r for r in rows}  # columns: task encoder method success CI vs-best seeds steps ...
    assert len(rows) == 2 and set(by_steps) == {"300", "3"}
    assert by_steps["300"][6] == "3" and by_steps["300"][3] == "0.67 ± 0.47"  # the newest record of seeds 0, 1
    assert by_steps["3"][6] == "2" and by_steps["3"][3] == "0.15 ± 0.05"
    # 95% CI of a success rate is clipped to [0, 1] (unclipped: about [-0.77, 2.10])
    assert by_steps["300"][4] == "[0.00, 1.00]"
    assert "Note:" in md and "index rows 1, 2" in md
    assert confidence_interval(np.array([1.0, 1.0, 0.0]), bounds=(0.0, 1.0)) == (0.0, 1.0)
    lo, hi = confidence_interval(np.array([1.0, 1.0, 0.0]))
    assert lo < 0 and hi > 1  # unbounded unless asked
    # the library summary de-duplicates too: one folder given twice counts once
    recs = [_record(second[0], 1.0), _record(second[0], 0.0)]
    kept, dropped = unique_runs(recs)
    assert kept == [recs[1]] and dropped == [recs[0]]
    assert [(r.seeds, r.success_mean) for r in summarize(recs)] == [(1, 0.0)]


def test_report_skips_a_corrupt_record_with_a_one_line_warning(index_with_runs, tmp_path, capsys):
    with RunsIndex(index_with_runs) as index:
        index._db.execute("""UPDATE jobs SET record_json='{"x":' WHERE id=1""")
    out = tmp_path / "r"
    assert app(["report", "--out", str(out), "--index", str(index_with_runs)]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "index row 1" in line]
    assert len(warning) == 1 and "vfmbench runs rm 1" in warning[0] and "Traceback" not in captured.err
    assert "(4 runs," in captured.out  # the other 4 done rows are reported


def test_report_shows_tasks_sweeps_human_titles_and_labelled_bars(index_with_runs, analysis_folder, tmp_path,
                                                                  monkeypatch):
    import matplotlib.axes

    from vfmbench.analysis.records import analysis_title

    labels = []
    real = matplotlib.axes.Axes.bar_label
    monkeypatch.setattr(matplotlib.axes.Axes, "bar_label",
                        lambda self, c, labels_=None, **kw: labels.append(list(kw.get("labels") or [])) or
                        real(self, c, **kw))
    with RunsIndex(index_with_runs) as index:  # a zero-success run: its bar must still show, labelled 0.00
        row = index.rows(status="done")[0]
        rec = row.record()
        rec.evaluation.success_rate = 0.0
        for s in rec.robustness:
            s.success_rate = 0.0
        index.finish(row.spec_hash, rec)
    out = tmp_path / "r"
    assert app(["report", "--out", str(out), "--index", str(index_with_runs), "--analyses",
                str(analysis_folder)]) == 0
    md = (out / "report.md").read_text()
    rob_header = next(line for line in md.splitlines() if "distractor" in line and line.startswith("|"))
    assert [c.strip() for c in rob_header.strip("|").split("|")][:3] == ["task", "encoder", "method"]
    not_done = md[md.index("## Jobs not done"):]
    assert [c.strip() for c in not_done.splitlines()[2].strip("|").split("|")] == ["sweep", "job", "status", "error"]
    assert "| rep " in not_done
    assert "## Analysis: Visual Alignment Testing" in md and "vfmbench.analysis.vat/1" not in md.split("\n## Analysis")[1]
    assert any(lab and all(x for x in lab) for lab in labels)  # every bar carries its value
    assert any(any(x.startswith("0.") for x in lab) for lab in labels)
    # titles: the record's own, else the name's
    assert analysis_title(FakeAnalysisRecord("vfmbench.analysis.phid/1")) == "PHID0"
    assert analysis_title(FakeAnalysisRecord("vfmbench.analysis.reconstruct/1")) == "Reconstruction"
    assert analysis_title(FakeAnalysisRecord("vfmbench.analysis.saliency/2")) == "FullGrad saliency"
    titled = FakeAnalysisRecord("vfmbench.analysis.vat/1")
    titled.title = "VAT of cube colours"
    assert analysis_title(titled) == "VAT of cube colours"


def test_a_zero_success_bar_is_drawn_and_labelled(tmp_path, monkeypatch):
    import matplotlib.axes

    from vfmbench.reports.html import plot_robustness
    from vfmbench.reports.tables import RobustnessRow, SummaryRow, plot_success

    seen = []
    real = matplotlib.axes.Axes.bar_label
    monkeypatch.setattr(matplotlib.axes.Axes, "bar_label",
                        lambda self, c, **kw: seen.append((c, list(kw["labels"]))) or real(self, c, **kw))
    rows = [SummaryRow("fetch_reach", enc, "bc", 3, mean, 0.0, None, "-", 1.0, 300, 256, "cached")
            for enc, mean in (("state", 0.9), ("e2e_cnn", 0.0))]
    assert plot_success(rows, tmp_path / "s.png").is_file()
    assert plot_robustness([RobustnessRow("fetch_reach", "e2e_cnn", "bc", "none", 3, 0.0, 0.0, 300, 256, "cached")],
                           tmp_path / "r.png").is_file()
    assert [labels for _, labels in seen] == [["0.90", "0.00"], ["0.00"]]
    zero_bars = [seen[0][0].patches[1], seen[1][0].patches[0]]
    assert all(b.get_height() == 0 and b.get_linewidth() > 0 for b in zero_bars)  # an edge: visible on the axis
