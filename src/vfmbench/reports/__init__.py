"""Tables, plots and markdown reports from typed run records."""

from vfmbench.reports.tables import (
    DROP,
    RobustnessRow,
    SummaryRow,
    format_robustness,
    format_table,
    summarize,
    summarize_robustness,
    write_report,
)

__all__ = ["DROP", "RobustnessRow", "SummaryRow", "format_robustness", "format_table", "summarize",
           "summarize_robustness", "write_report"]
