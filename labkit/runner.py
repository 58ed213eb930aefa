"""The run entry points, kept importable here; the pipeline lives in ``labkit.lab``.

``labkit.runner.run`` and ``labkit.run`` are ``labkit.lab.pipeline.run``;
``labkit.arun`` is its async form. One style's run is a
``labkit.lab.session.Session``; delivery styles are ``labkit.styles`` units.
"""

from __future__ import annotations

from labkit.lab.pipeline import RunResult, arun, run, summarise_style
from labkit.lab.session import START_DELAY_S, Progress, StyleRun
from labkit.styles.base import WINDOW_COUNTERS
from labkit.styles.polling import snapshot_stats, wait_for_file

__all__ = [
    "START_DELAY_S",
    "WINDOW_COUNTERS",
    "Progress",
    "RunResult",
    "StyleRun",
    "arun",
    "run",
    "snapshot_stats",
    "summarise_style",
    "wait_for_file",
]
