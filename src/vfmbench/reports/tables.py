"""Summaries over seeds, a plain-text/markdown table and a bar plot.

Statistics: success is summarised per (task, encoder, method, training budget) over seeds, the
budget being what the table shows (gradient steps, batch size, augmentation): runs of different
budgets are different rows, never pooled. Each run counts once: `summarize` keeps one record per
(task, encoder, method, seed, budget), the last given; `unique_runs` also drops a second record of
one run folder (what `vfmbench report` applies to index rows, newest record last). A row has the mean,
the population standard deviation and a 95% confidence interval of the mean from Student's t
distribution (``mean ± t(0.975, n-1) · s / sqrt(n)``, s the sample standard deviation; none for a
single seed), clipped to [0, 1] since a success rate lies there. Within each (task, method), every
row is compared with the row of the highest mean by Welch's two-sample t-test over seeds (scipy);
``vs_best`` says ``best``, ``n.s.`` (p >= 0.05: not significantly different from the best) or
``p=...`` (significantly worse).

Robustness: the drop under a shift is clean success minus shifted success on the same seeds
(`DROP`), positive when the policy got worse; every table, plot caption and report uses that sign.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tabulate import tabulate

if TYPE_CHECKING:  # records are read, never built, here
    from vfmbench.evaluation.robustness import RobustnessReport
    from vfmbench.experiments.demo import DemoResults
    from vfmbench.experiments.job import RunRecord
    from vfmbench.training import TrainRecord

# The one sign convention of robustness drops, as tables and reports state it.
DROP = "drop: clean success minus shifted success on the same seeds (positive: the policy got worse)"


@dataclass
class SummaryRow:
    """Success over seeds of one (task, encoder label, method), with the training budget."""

    task: str
    encoder: str
    method: str
    seeds: int
    success_mean: float
    success_std: float
    ci95: tuple[float, float] | None  # t-interval of the mean over seeds (None for one seed)
    vs_best: str  # "best", "n.s." or "p=0.012" (Welch's t-test against the best row of its task/method)
    train_seconds_mean: float
    steps: int
    batch_size: int
    augment: str


@dataclass
class RobustnessRow:
    """Mean success and mean drop (clean minus shifted) over seeds under one shift (per budget, like `SummaryRow`)."""

    task: str
    encoder: str
    method: str
    shift: str
    seeds: int
    success_mean: float
    drop_mean: float
    steps: int = 0
    batch_size: int = 0
    augment: str = ""


def budget(record: RunRecord) -> tuple[int, int, str]:
    """A run's training budget as the tables show it: (gradient steps, batch size, augmentation)."""
    t = record.train
    return (t.steps, t.batch_size, t.augment)


def unique_runs(records: Sequence[RunRecord], by_folder: bool = True) -> tuple[list[RunRecord], list[RunRecord]]:
    """(kept, dropped): one record per (task, encoder label, method, seed, budget) and, with
    `by_folder`, per run folder, so no run is counted twice (e.g. one folder recorded by two sweeps
    of different specs). Later records win (give them oldest first); kept records keep their order."""
    seen: set = set()
    keep = set()
    for i in range(len(records) - 1, -1, -1):  # later records first
        r = records[i]
        ids = {("run", r.task, r.encoder_label, r.method, r.seed, budget(r))}
        if by_folder and r.run_dir:
            ids.add(("dir", str(Path(r.run_dir).resolve())))
        if not ids & seen:
            keep.add(i)
        seen |= ids
    kept = [r for i, r in enumerate(records) if i in keep]
    dropped = [r for i, r in enumerate(records) if i not in keep]
    return kept, dropped


def summarize(records: Sequence[RunRecord]) -> list[SummaryRow]:
    """Mean, standard deviation and 95% CI (over seeds, clipped to [0, 1]) of success per (task,
    encoder label, method, budget), each compared with the best of its (task, method). Each (task,
    encoder, method, seed, budget) counts once (the last record); records without an evaluation are left out."""
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in unique_runs(records, by_folder=False)[0]:
        if r.evaluation is not None:
            groups[(r.task, r.encoder_label, r.method, *budget(r))].append(r)
    successes = {key: np.array([r.evaluation.success_rate for r in rs if r.evaluation is not None], dtype=float)
                 for key, rs in groups.items()}
    best: dict[tuple[str, str], tuple[str, str, str]] = {}
    for key, s in successes.items():
        group = (key[0], key[2])
        if group not in best or s.mean() > successes[best[group]].mean():
            best[group] = key
    rows = []
    for key, rs in groups.items():
        task, encoder, method = key[:3]
        s = successes[key]
        t = rs[0].train
        rows.append(SummaryRow(
            task=task, encoder=encoder, method=method, seeds=len(rs),
            success_mean=round(float(s.mean()), 4), success_std=round(float(s.std()), 4),
            ci95=confidence_interval(s, bounds=(0.0, 1.0)), vs_best=_vs_best(s, successes[best[(task, method)]], key == best[(task, method)]),
            train_seconds_mean=round(float(np.mean([r.train.train_seconds for r in rs])), 1),
            steps=t.steps, batch_size=t.batch_size, augment=t.augment,
        ))
    return rows


def confidence_interval(x: np.ndarray, level: float = 0.95,
                        bounds: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Student-t interval of the mean of `x` (None for fewer than 2 values), clipped to `bounds`
    (e.g. (0, 1) for success rates) when given."""
    from scipy import stats

    if len(x) < 2:
        return None
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    lo, hi = float(x.mean()) - half, float(x.mean()) + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return (round(lo, 4), round(hi, 4))


def _vs_best(x: np.ndarray, best: np.ndarray, is_best: bool) -> str:
    """Welch's t-test of `x` against the best row's values over seeds."""
    from scipy import stats

    if is_best:
        return "best"
    if len(x) < 2 or len(best) < 2:
        return "-"  # one seed: no test
    if x.std() == 0 and best.std() == 0:  # no spread: any difference in means is certain
        return "n.s." if x.mean() == best.mean() else "p<0.001"
    # from the summary statistics: the same Welch test, without scipy's warning about a constant group
    p = float(stats.ttest_ind_from_stats(x.mean(), x.std(ddof=1), len(x), best.mean(), best.std(ddof=1), len(best),
                                         equal_var=False).pvalue)
    return "n.s." if p >= 0.05 else ("p<0.001" if p < 0.001 else f"p={p:.3f}")


def summarize_robustness(records: Sequence[RunRecord]) -> list[RobustnessRow]:
    """Mean success and mean drop against the clean task over seeds, per (task, encoder, method,
    budget, shift); each run counts once (`unique_runs`)."""
    groups: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for r in unique_runs(records, by_folder=False)[0]:
        for s in r.robustness:
            groups[(r.task, r.encoder_label, r.method, s.shift, *budget(r))].append((s.success_rate, s.drop))
    return [
        RobustnessRow(t, e, m, s, len(v), round(float(np.mean([x[0] for x in v])), 4),
                      round(float(np.mean([x[1] for x in v])), 4), steps, batch, aug)
        for (t, e, m, s, steps, batch, aug), v in groups.items()
    ]


def format_robustness(summary: Sequence[RobustnessRow], markdown: bool = False) -> str:
    """One row per task/encoder/method/budget, one column per shift: 'success (drop +x.xx)', the drop
    against ``none`` with the sign of `DROP`."""
    shifts = list(dict.fromkeys(r.shift for r in summary))
    keys = list(dict.fromkeys((r.task, r.encoder, r.method, r.steps, r.batch_size, r.augment) for r in summary))
    cell = {(r.task, r.encoder, r.method, r.steps, r.batch_size, r.augment, r.shift): r for r in summary}
    rows = []
    for key in keys:
        cells = []
        for s in shifts:
            r = cell.get((*key, s))
            if r is None:
                cells.append("")
            else:
                cells.append(f"{r.success_mean:.2f}" + ("" if s == "none" else f" (drop {r.drop_mean:+.2f})"))
        task, enc, meth, steps, batch, aug = key
        rows.append([task, enc, meth, str(steps), str(batch), aug, *cells])
    return tabulate(rows, headers=["task", "encoder", "method", "steps", "batch", "augment", *shifts],
                    tablefmt="pipe" if markdown else "simple", disable_numparse=True)


def format_table(summary: Sequence[SummaryRow], markdown: bool = False) -> str:
    """The summary as a plain-text (or markdown) table, with each row's training budget."""
    header = ["task", "encoder", "method", "success (mean ± std)", "95% CI", "vs best", "seeds", "steps", "batch",
              "augment", "train s"]
    rows = [[r.task, r.encoder, r.method, f"{r.success_mean:.2f} ± {r.success_std:.2f}",
             "-" if r.ci95 is None else f"[{r.ci95[0]:.2f}, {r.ci95[1]:.2f}]", r.vs_best, str(r.seeds), str(r.steps),
             str(r.batch_size), r.augment, f"{r.train_seconds_mean:.0f}"] for r in summary]
    return tabulate(rows, headers=header, tablefmt="pipe" if markdown else "simple", disable_numparse=True)


def _budget_label(steps: int, batch_size: int, augment: str) -> str:
    """A training budget on two short lines, for the labels under a plot's bars."""
    return f"{steps} steps\nbatch {batch_size}, {augment}"


def plot_success(summary: Sequence[SummaryRow], path: Path) -> Path | None:
    """Bar chart of mean success with std error bars; None if matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    several = {k: len({getattr(r, k) for r in summary}) > 1 for k in ("task", "steps", "batch_size", "augment")}
    labels = [f"{r.encoder}\n{r.method}" + (f"\n{r.task}" if several["task"] else "")
              + (f"\n{_budget_label(r.steps, r.batch_size, r.augment)}"
                 if several["steps"] or several["batch_size"] or several["augment"] else "") for r in summary]
    means = [r.success_mean for r in summary]
    stds = [r.success_std for r in summary]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.9 * len(labels)), 3.2))
    bars = ax.bar(range(len(labels)), means, yerr=stds, capsize=4, color="#4c72b0", edgecolor="#1f3a60",
                  linewidth=1.5)  # the edge keeps a zero-success bar visible as a line on the axis
    ax.bar_label(bars, labels=[f"{m:.2f}" for m in means], fontsize=7, padding=2)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.12)  # room for the value labels above full bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("success rate")
    tasks = sorted({r.task for r in summary})
    ax.set_title(f"{', '.join(tasks)}: success over seeds (mean ± std)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_robustness(rows: Sequence[RobustnessRow], path: Path) -> Path | None:
    """Grouped bars: mean success per encoder (groups) under each shift (bars); None without matplotlib or rows."""
    if not rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None

    shifts = list(dict.fromkeys(r.shift for r in rows))
    groups = list(dict.fromkeys((r.task, r.encoder, r.method, (r.steps, r.batch_size, r.augment)) for r in rows))
    cell = {(r.task, r.encoder, r.method, (r.steps, r.batch_size, r.augment), r.shift): r.success_mean for r in rows}
    width = 0.8 / len(shifts)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(groups) + 1), 3.4))
    x = np.arange(len(groups))
    for i, shift in enumerate(shifts):
        values = [cell.get((*g, shift), np.nan) for g in groups]
        bars = ax.bar(x + (i - (len(shifts) - 1) / 2) * width, values, width, label=shift,
                      edgecolor="#333333", linewidth=1.0)  # the edge keeps a zero-success bar visible
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.2f}" for v in values], fontsize=6, padding=1)
    several_tasks = len({g[0] for g in groups}) > 1
    several_budgets = len({g[3] for g in groups}) > 1
    ax.set_xticks(x, [f"{e}\n{m}" + (f"\n{t}" if several_tasks else "")
                      + (f"\n{_budget_label(*b)}" if several_budgets else "")
                      for t, e, m, b in groups], fontsize=8)
    ax.set_ylim(0, 1.12)  # room for the value labels above full bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("success rate")
    ax.set_title("success under each shift (mean over seeds)", fontsize=9)
    ax.legend(fontsize=7, title="shift", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # off the bars
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def run_robustness_rows(method: str, train: TrainRecord, report: RobustnessReport) -> list[RobustnessRow]:
    """One run's robustness (`vfmbench robustness`) as rows of one seed, for `plot_robustness`."""
    return [RobustnessRow(report.task, train.encoder_label, method, r.shift, 1, r.success_rate, r.drop, train.steps,
                          train.batch_size, train.augment) for r in report.results]


def write_report(doc: "DemoResults", out: Path) -> Path:
    """``report.md`` with the summary table, the plots (``success.png``, and ``robustness.png`` when
    the demo evaluated shifts) and the settings."""
    out = Path(out)
    plot = plot_success(doc.summary, out / "success.png")
    rob_plot = plot_robustness(doc.robustness_summary, out / "robustness.png")
    cfg = doc.config
    lines = [
        "# vfmbench demo report",
        "",
        f"Task `{cfg.task}`, method `{cfg.method}`, {len(cfg.seeds)} seed(s), "
        f"{doc.dataset.episodes} expert episodes for training, {cfg.eval_episodes} held-out "
        f"evaluation episodes per run. Total time {doc.seconds:.0f} s.",
        "",
        format_table(doc.summary, markdown=True),
        "",
        "Success over seeds: mean ± population std; 95% CI of the mean from Student's t; *vs best*: Welch's "
        "t-test against the best encoder of the same task and method (n.s.: not significantly different, "
        "p >= 0.05). Budget: gradient steps, batch size, augmentation (*cached*: frozen encoder, trained on "
        "cached embeddings).",
        "",
    ]
    if plot is not None:
        lines += [f"![success rates]({plot.name})", ""]
    if doc.robustness_summary:
        lines += ["## Under shifts", "",
                  f"Success on the same held-out seeds under each shift, with each row's training budget; in "
                  f"brackets the {DROP}, averaged over seeds.", "",
                  format_robustness(doc.robustness_summary, markdown=True), ""]
        if rob_plot is not None:
            lines += [f"![success per shift per encoder]({rob_plot.name})", ""]
    lines += ["Per-run records are in `results.json`; run folders (configs, metrics, checkpoints) under `runs/`.", ""]
    lines += _analysis_lines(out)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _analysis_lines(out: Path) -> list[str]:
    """An "Analyses" section with every analysis record under ``out/analysis/`` (`vfmbench analyze
    ... --out OUT/analysis/NAME`): its table and figures. An unreadable record is named, not fatal."""
    from vfmbench.analysis.records import analysis_title, find_records, missing_figures, missing_note, read_record
    from vfmbench.utils.errors import DatasetError

    paths = find_records(out / "analysis") if (out / "analysis").is_dir() else []
    if not paths:
        return []
    lines = ["## Analyses", ""]
    for path in paths:
        rel = path.parent.relative_to(out)
        try:
            record = read_record(path)
        except DatasetError as exc:
            lines += [f"`{rel / path.name}`: not included ({exc})", ""]
            continue
        missing = missing_figures(record, path.parent)
        lines += [f"### {analysis_title(record)}", "", record.markdown(), ""]
        lines += [f"![{fig}]({(rel / fig).as_posix()})" for fig in record.figures if fig not in missing]
        lines += [missing_note(record, path.parent), ""]
    return lines
