"""Tables, plots and markdown reports from results records."""

from vfmbench.reports.tables import format_robustness, format_table, summarize, summarize_robustness, write_report

__all__ = ["format_robustness", "format_table", "summarize", "summarize_robustness", "write_report"]
