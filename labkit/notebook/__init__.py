"""What the notebooks in ``notebooks/`` call besides the public API: modes, places, runs, widgets.

A notebook imports the package, sets parameters, calls, plots and explains;
any function it would otherwise define lives in this package and is
re-exported here, so that a notebook needs one name (``nb``): modes, places
and runs in ``runs``, widgets in ``widgets``, tables and views in ``views``.

    quick_mode(), params(full=, quick=)    LABKIT_QUICK=1 shrinks every run so that all the
                                           notebooks execute top to bottom in minutes (the tests)
    results_root(), checkout()             LABKIT_RESULTS, else <checkout>/results/notebooks
                                           (.../notebooks/quick in quick mode: the two never mix)
    setup()                                figures render inline as PNG; says the mode and the folder
    arun(), run(), experiment(), sweep(),  runs, sweeps, capacity tests with a progress bar, each
    capacity(), events(), fault_table()    writing to a fixed folder of the notebook
    interval_explorer(), lambda_t_explorer(), projection_explorer(),
    fault_explorer(), requirements_explorer()
                                           ipywidgets wired to labkit calls; each renders once on
                                           creation, so a headless run shows the default view

``await nb.arun(settings, name)`` runs on the notebook's own event loop
through ``labkit.arun``. The synchronous helpers (``run``, ``sweep``,
``capacity``, ``tls_cost``) call library functions that start their own
event loop, which Jupyter's running loop forbids in its thread: they run in a
worker thread and wait (``off_the_loop``).
"""

from __future__ import annotations

from labkit.notebook.runs import (
    QUICK_ENV,
    RESULTS_ENV,
    NotebookProgress,
    arun,
    capacity,
    checkout,
    events,
    experiment,
    fault_table,
    off_the_loop,
    params,
    quick_mode,
    report_inputs,
    results_root,
    run,
    scenarios_dir,
    settings_with,
    setup,
    sweep,
    tls_cost,
)
from labkit.notebook.views import (
    REPORT_INPUTS,
    calibration_frame,
    exchange,
    projection_frame,
    recommendation_markdown,
    report_results,
    show_report,
    ssrf_verdicts,
    summary_frame,
    webhook_message,
)
from labkit.notebook.widgets import (
    fault_explorer,
    interval_explorer,
    lambda_t_explorer,
    projection_explorer,
    requirements_explorer,
)

__all__ = [
    "NotebookProgress",
    "QUICK_ENV",
    "REPORT_INPUTS",
    "RESULTS_ENV",
    "arun",
    "calibration_frame",
    "capacity",
    "checkout",
    "events",
    "exchange",
    "experiment",
    "fault_explorer",
    "fault_table",
    "interval_explorer",
    "lambda_t_explorer",
    "off_the_loop",
    "params",
    "projection_explorer",
    "projection_frame",
    "quick_mode",
    "recommendation_markdown",
    "report_inputs",
    "report_results",
    "requirements_explorer",
    "results_root",
    "run",
    "scenarios_dir",
    "settings_with",
    "setup",
    "show_report",
    "ssrf_verdicts",
    "summary_frame",
    "sweep",
    "tls_cost",
    "webhook_message",
]
