"""A static report page (``index.html``, plus ``report.md``) from runs-index records and analysis records.

`build_report` takes typed records: offline `RunRecord`s become the summary table (mean ± std
over seeds, 95% CI, Welch's test against the best, the training budget: steps, batch,
augmentation) and the success plot (`tables.py`), their robustness evaluations a table and a plot
of success per shift per encoder; online RL records become the return tables of `rl.job`; analysis
records (`vfmbench.analysis.records`) add their ``markdown()`` and figures. Templates: jinja2,
markdown: markdown-it-py (extra ``report``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from vfmbench.reports.tables import (
    DROP,
    format_robustness,
    format_table,
    plot_robustness,
    plot_success,
    summarize,
    summarize_robustness,
)
from vfmbench.utils.imports import require


@dataclass
class AnalysisSection:
    """One analysis record placed in a report: its markdown and figures (paths relative to the report folder)."""

    title: str
    source: str
    markdown: str
    figures: list[str] = field(default_factory=list)


@dataclass
class ReportInput:
    """Everything a report shows. `runs`: offline `RunRecord`s; `rl_runs`: `RLRunRecord`s;
    `problems`: (sweep, job key, status, first error line) of jobs not done; `filters`: how the runs were
    chosen; `notes`: warnings shown at the top (runs left out, unreadable records)."""

    title: str
    runs: list[Any] = field(default_factory=list)
    rl_runs: list[Any] = field(default_factory=list)
    problems: list[tuple[str, str, str, str]] = field(default_factory=list)
    filters: str = ""
    notes: list[str] = field(default_factory=list)
    analyses: list[Path] = field(default_factory=list)  # analysis record files (find_records)


@dataclass
class ReportOutput:
    """The files a report wrote, under its folder."""

    html: Path
    markdown: Path
    figures: list[Path]


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f3f7; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
code { background: #f5f5f5; padding: 0 0.2em; }
</style></head>
<body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ created }}{% if filters %}; runs: <code>{{ filters }}</code>{% endif %};
{{ n_runs }} offline run(s), {{ n_rl }} RL run(s){% if problems %}, {{ problems|length }} not done{% endif %}.</p>
{% for note in notes %}<p class="note"><strong>Note:</strong> {{ note }}</p>
{% endfor %}{% if summary %}
<h2>Success over seeds</h2>
{{ summary }}
<p class="note">One row per task, encoder, method and training budget (runs of different budgets are never
pooled; each run counts once). Mean ± population std over seeds; 95% CI of the mean from Student's t, clipped to
[0, 1]; <em>vs best</em>: Welch's
t-test against the best encoder of the same task and method (n.s.: p &ge; 0.05). Budget: gradient steps, batch size,
augmentation (<em>cached</em>: frozen encoder trained on cached embeddings).</p>
{% for fig in success_figures %}<img src="{{ fig }}" alt="success per encoder">{% endfor %}
{% endif %}
{% if robustness %}
<h2>Under shifts</h2>
<p class="note">Success on the same held-out seeds under each shift, with each row's training budget; in brackets
the {{ drop }}, averaged over seeds.</p>
{{ robustness }}
{% for fig in robustness_figures %}<img src="{{ fig }}" alt="success per shift per encoder">{% endfor %}
{% endif %}
{% for shift, table in rl_tables %}
<h2>Online RL: return under {{ shift }}</h2>
{{ table }}
{% endfor %}
{% if problems %}
<h2>Jobs not done</h2>
{{ problems_table }}
{% endif %}
{% for a in analyses %}
<h2>Analysis: {{ a.title }}</h2>
<p class="note">{{ a.source }}</p>
{{ a.html }}
{% for fig in a.figures %}<img src="{{ fig }}" alt="{{ a.title }} figure">{% endfor %}
{% endfor %}
</body></html>
"""


_PROBLEM_HEADERS = ["sweep", "job", "status", "error"]


def _markdown_to_html(text: str) -> str:
    markdown_it = require("markdown_it", extra="report")
    return markdown_it.MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _analysis_sections(paths: Sequence[Path], out: Path) -> list[AnalysisSection]:
    """Read each analysis record; copy its figures under ``out/analyses/<i>-<name>/``."""
    from vfmbench.analysis.records import analysis_title, missing_note, read_record

    sections = []
    for i, path in enumerate(paths):
        record = read_record(path)
        dest = out / "analyses" / f"{i}-{path.stem}"
        figures = []
        for fig in record.figures:
            src = path.parent / fig
            if src.is_file():
                target = dest / fig
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
                figures.append(str(target.relative_to(out)))
        note = missing_note(record, path.parent)
        sections.append(AnalysisSection(title=analysis_title(record), source=str(path),
                                        markdown=record.markdown() + (f"\n\n{note}" if note else ""), figures=figures))
    return sections


def build_report(inp: ReportInput, out: str | Path) -> ReportOutput:
    """Write ``index.html``, ``report.md`` and the figures of `inp` into `out`; returns their paths.

    Raises `MissingDependencyError` naming the extra ``report`` without jinja2 or markdown-it-py,
    `DatasetError` for an unreadable analysis record."""
    jinja2 = require("jinja2", extra="report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(inp.runs)
    rob = summarize_robustness(inp.runs)
    figures: list[Path] = []
    success_png = plot_success(summary, out / "success.png") if summary else None
    rob_png = plot_robustness(rob, out / "robustness.png")
    figures += [p for p in (success_png, rob_png) if p is not None]
    rl_tables: list[tuple[str, list[dict[str, str]]]] = []
    if inp.rl_runs:
        from vfmbench.rl.job import return_table

        rl_tables = list(return_table(inp.rl_runs).items())
    sections = _analysis_sections(inp.analyses, out)
    figures += [out / f for s in sections for f in s.figures]
    from markupsafe import Markup  # jinja2's own dependency

    page = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(_TEMPLATE).render(
        title=inp.title, created=time.strftime("%Y-%m-%d %H:%M"), filters=inp.filters,
        n_runs=len(inp.runs), n_rl=len(inp.rl_runs), problems=inp.problems, notes=inp.notes,
        summary=Markup(_markdown_to_html(format_table(summary, markdown=True))) if summary else "",
        success_figures=[success_png.name] if success_png else [],
        robustness=Markup(_markdown_to_html(format_robustness(rob, markdown=True))) if rob else "", drop=DROP,
        robustness_figures=[rob_png.name] if rob_png else [],
        rl_tables=[(shift, Markup(tabulate(rows, headers="keys", tablefmt="html"))) for shift, rows in rl_tables],
        problems_table=Markup(tabulate([list(p) for p in inp.problems], headers=_PROBLEM_HEADERS,
                                        tablefmt="html")),
        analyses=[{"title": s.title, "source": s.source, "html": Markup(_markdown_to_html(s.markdown)),
                   "figures": s.figures} for s in sections],
    )
    html_path = out / "index.html"
    html_path.write_text(page)
    md_path = out / "report.md"
    md_path.write_text(_markdown(inp, summary, rob, success_png, rob_png, rl_tables, sections))
    return ReportOutput(html_path, md_path, figures)


def _markdown(inp: ReportInput, summary, rob, success_png, rob_png, rl_tables, sections) -> str:
    lines = [f"# {inp.title}", "", f"Runs: `{inp.filters or 'all'}`; {len(inp.runs)} offline run(s), "
             f"{len(inp.rl_runs)} RL run(s).", ""] + [f"**Note:** {n}\n" for n in inp.notes]
    if summary:
        lines += ["## Success over seeds", "", format_table(summary, markdown=True), ""]
        if success_png:
            lines += [f"![success per encoder]({success_png.name})", ""]
    if rob:
        lines += ["## Under shifts", "", f"In brackets the {DROP}, averaged over seeds.", "",
                  format_robustness(rob, markdown=True), ""]
        if rob_png:
            lines += [f"![success per shift per encoder]({rob_png.name})", ""]
    for shift, rows in rl_tables:
        lines += [f"## Online RL: return under {shift}", "", tabulate(rows, headers="keys", tablefmt="pipe"), ""]
    if inp.problems:
        lines += ["## Jobs not done", "", tabulate([list(p) for p in inp.problems], headers=_PROBLEM_HEADERS,
                                                   tablefmt="pipe"), ""]
    for s in sections:
        lines += [f"## Analysis: {s.title}", "", s.markdown, ""] + [f"![{s.title}]({f})" for f in s.figures] + [""]
    return "\n".join(lines)
