"""The HTML report of a run: plots and a per-case drill-down in one self-contained file."""

from ragtune.report.html import build_report, write_report

__all__ = ["build_report", "write_report"]
