"""labkit: webhooks or polling, settled by measurement.

The public API. Names are imported lazily (PEP 562) so that a server process
or a ``labkit --help`` does not pay for pandas and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from labkit._version import __version__ as __version__

# name -> the module that defines it; a module named by itself (``figures``, ``model``) is that module.
_EXPORTS: dict[str, str] = {
    "ConfigError": "labkit.errors",
    "LabkitError": "labkit.errors",
    "PollerSettings": "labkit.config",
    "ProviderSettings": "labkit.config",
    "ReceiverSettings": "labkit.config",
    "ResultsError": "labkit.errors",
    "RunResult": "labkit.lab.pipeline",
    "RunSettings": "labkit.config",
    "WorkloadSettings": "labkit.config",
    "Requirements": "labkit.report",
    "decide": "labkit.report",
    "figures": "labkit.analysis.figures",
    "fit_costs": "labkit.analysis.calibration",
    "load_capacity": "labkit.capacity",
    "load_experiment": "labkit.runs.experiments",
    "project": "labkit.analysis.calibration",
    "run_sweep": "labkit.runs.sweep",
    "write_report": "labkit.report",
    "build_workload": "labkit.lab.workload",
    "load_events": "labkit.results.layout",
    "load_latency_logs": "labkit.results.hlog",
    "load_results": "labkit.results.layout",
    "model": "labkit.model",
    "run": "labkit.lab.pipeline",
    "arun": "labkit.lab.pipeline",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    if module.rsplit(".", 1)[-1] == name:
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
