"""The HTML report of a results folder (``runner report``, ``runner predict --report``).

>>> from runner.report import write_report
>>> write_report("out/", "out/report.html")  # doctest: +SKIP
"""

from runner.report.build import DEFAULT_MAX_MB, ReportInfo, render_report, write_report
from runner.report.collect import Results, collect_results

__all__ = ["DEFAULT_MAX_MB", "ReportInfo", "Results", "collect_results", "render_report", "write_report"]
