"""Tables, plots and markdown reports from typed run records."""

from vfmbench.reports.tables import (
    RobustnessRow,
    SummaryRow,
    format_robustness,
    format_table,
    summarize,
    summarize_robustness,
    write_report,
)

__all__ = ["RobustnessRow", "SummaryRow", "format_robustness", "format_table", "summarize", "summarize_robustness",
           "write_report"]
