"""Tables, plots and markdown reports from results records."""

from vfmbench.reports.tables import format_table, summarize, write_report

__all__ = ["format_table", "summarize", "write_report"]
