"""Capacity planning with Locust: how much load one provider or receiver holds within an SLO.

``labkit capacity SCENARIO`` (``run_capacity``) starts the servers a scenario
needs on loopback, runs a Locust step test that stops itself at the SLO, and
finds the highest step that met it and what limited it. Results land in
``results/capacity/<run-id>/``; ``load_capacity`` reads them back, one row per
step, and ``capacity_curve`` draws them; ``read_latency`` reads a run's exact,
merged request histograms (``locust_latency*.hlog``) back.

Names are imported lazily: the locustfiles import ``labkit.capacity.locustlib``
under gevent, and must not pay for (or be broken by) pandas, httpx or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "CapacityResult": "labkit.capacity.run",
    "CapacitySettings": "labkit.capacity.settings",
    "SCENARIOS": "labkit.capacity.settings",
    "StepPlan": "labkit.capacity.stepping",
    "capacity_curve": "labkit.capacity.figures",
    "find_capacity": "labkit.capacity.analysis",
    "load_capacity": "labkit.capacity.analysis",
    "read_latency": "labkit.capacity.latency",
    "run_capacity": "labkit.capacity.run",
}

__all__ = [
    "SCENARIOS",
    "CapacityResult",
    "CapacitySettings",
    "StepPlan",
    "capacity_curve",
    "find_capacity",
    "load_capacity",
    "read_latency",
    "run_capacity",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labkit.capacity' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
