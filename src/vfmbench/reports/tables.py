"""Summaries over seeds, a plain-text/markdown table and a bar plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of success over seeds, per (task, encoder label, method)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["task"], r.get("encoder_label", r["encoder"]), r["method"])].append(r)
    rows = []
    for (task, encoder, method), rs in groups.items():
        s = np.array([r["success_rate"] for r in rs], dtype=float)
        rows.append({
            "task": task, "encoder": encoder, "method": method, "seeds": len(rs),
            "success_mean": round(float(s.mean()), 4), "success_std": round(float(s.std()), 4),
            "train_seconds_mean": round(float(np.mean([r.get("train_seconds", 0.0) for r in rs])), 1),
        })
    return rows


def summarize_robustness(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean success and mean drop against the clean task over seeds, per (encoder, method, shift)."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r.get("encoder_label", r["encoder"]), r["method"], r["shift"])].append(r)
    return [
        {"task": t, "encoder": e, "method": m, "shift": s, "seeds": len(rs),
         "success_mean": round(float(np.mean([r["success_rate"] for r in rs])), 4),
         "drop_mean": round(float(np.mean([r["drop"] for r in rs])), 4)}
        for (t, e, m, s), rs in groups.items()
    ]


def format_robustness(summary: list[dict[str, Any]]) -> str:
    """Markdown table: one row per encoder/method, one column per shift ('success (drop)')."""
    shifts = list(dict.fromkeys(r["shift"] for r in summary))
    keys = list(dict.fromkeys((r["encoder"], r["method"]) for r in summary))
    cell = {(r["encoder"], r["method"], r["shift"]): r for r in summary}
    lines = ["| encoder | method | " + " | ".join(shifts) + " |", "|---|---|" + "---|" * len(shifts)]
    for enc, meth in keys:
        cells = []
        for s in shifts:
            r = cell.get((enc, meth, s))
            cells.append("" if r is None else f"{r['success_mean']:.2f}" + ("" if s == "none" else f" ({-r['drop_mean']:+.2f})"))
        lines.append(f"| {enc} | {meth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(summary: list[dict[str, Any]], markdown: bool = False) -> str:
    header = ["task", "encoder", "method", "success (mean ± std)", "seeds", "train s"]
    rows = [[r["task"], r["encoder"], r["method"], f"{r['success_mean']:.2f} ± {r['success_std']:.2f}",
             str(r["seeds"]), f"{r['train_seconds_mean']:.0f}"] for r in summary]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def plot_success(summary: list[dict[str, Any]], path: Path) -> Path | None:
    """Bar chart of mean success with std error bars; None if matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = [f"{r['encoder']}\n{r['method']}" for r in summary]
    means = [r["success_mean"] for r in summary]
    stds = [r["success_std"] for r in summary]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(labels)), 3.2))
    ax.bar(range(len(labels)), means, yerr=stds, capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate")
    tasks = sorted({r["task"] for r in summary})
    ax.set_title(f"{', '.join(tasks)}: success over seeds (mean ± std)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(doc: dict[str, Any], out: Path) -> Path:
    """``report.md`` with the summary table, the plot and the settings."""
    out = Path(out)
    plot = plot_success(doc["summary"], out / "success.png")
    cfg = doc["config"]
    lines = [
        "# vfmbench demo report",
        "",
        f"Task `{cfg['task']}`, method `{cfg['method']}`, {len(cfg['seeds'])} seed(s), "
        f"{doc['dataset']['episodes']} expert episodes for training, {cfg['eval_episodes']} held-out "
        f"evaluation episodes per run. Total time {doc['seconds']:.0f} s.",
        "",
        format_table(doc["summary"], markdown=True),
        "",
    ]
    if plot is not None:
        lines += [f"![success rates]({plot.name})", ""]
    if doc.get("robustness_summary"):
        lines += ["## Under shifts", "",
                  "Success on the same held-out seeds under each shift; in brackets the change against "
                  "the clean task (`none`), averaged over seeds.", "",
                  format_robustness(doc["robustness_summary"]), ""]
    lines += ["Per-run records are in `results.json`; run folders (configs, metrics, checkpoints) under `runs/`.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
