"""Decision reports: from the user's requirements and the measurements to a recommendation.

    requirements.py   the requirements TOML: ``Requirements``, ``load_requirements``
    decide.py         ``decide(requirements, results) -> Recommendation`` (pure): operating point, reasons
    options.py        the options table: every candidate weighed, the cheapest that meets every hard requirement
    weigh.py          one candidate's hard requirements (with standard errors) and cost at the operating point
    policy.py         the decision policy: headroom, floors, the interval rule, 70 % load, ties
    reasons.py        the reasons and coverage gaps a recommendation cites (``Case``)
    render.py         ``write_report(results_paths, out_dir, requirements=None) -> ReportPaths``
    templates/        the HTML page (CSS inlined, figures as data URIs) and its Markdown twin

A report only reads results; it never runs anything.
"""

from __future__ import annotations

from labkit.report.decide import CoverageGap, Evidence, Reason, Recommendation, decide
from labkit.report.render import ReportPaths, write_report
from labkit.report.requirements import Requirements, default_requirements, load_requirements
from labkit.report.terms import FACTORS, OPTIONS

__all__ = [
    "FACTORS",
    "OPTIONS",
    "CoverageGap",
    "Evidence",
    "Reason",
    "Recommendation",
    "ReportPaths",
    "Requirements",
    "decide",
    "default_requirements",
    "load_requirements",
    "write_report",
]
