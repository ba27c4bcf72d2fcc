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
    assert "distractor" in page and "(-0.20)" in page  # robustness, with the change against the clean task
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
