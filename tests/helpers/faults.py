"""One fault run and its no-loss check, shared by the failure tests of every family.

A short seeded workload (20 events/s for 3 s) through the real pipeline with one
fault plan; the checks say what every fault must leave intact: every committed
event reaches every consumer, and nothing is processed twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.config import RunSettings
from labkit.lab import pipeline


def run_fault(tmp_path: Path, fault: dict[str, Any], styles: tuple[str, ...], **settings: Any) -> dict[str, Any]:
    """Run ``styles`` under ``fault`` and return the run's summary."""
    run_settings = RunSettings(
        workload={"rate_per_s": 20.0, "duration_s": 3.0, "seed": 5},
        drain_timeout_s=30,
        styles=styles,
        experiment="failures",
        fault=fault,
        **settings,
    )
    return pipeline.run(run_settings, results_dir=tmp_path / "run").summary


def no_loss(style: dict[str, Any], *, every_consumer: bool = False) -> dict[str, Any]:
    """Assert the fault lost nothing and processed nothing twice; return the fault block.

    ``every_consumer``: each event is owed to every consumer (a held stream per consumer),
    so the deliveries are the published events times the consumers.
    """
    f = style["fault"]
    assert f["published"] > 0
    assert f["lost"] == 0 and style["lost"] == 0, f
    owed = f["published"] * (style["consumers"] if every_consumer else 1)
    assert f["delivered"] == owed
    assert f["duplicates_processed"] == 0
    assert style["drained"]
    return f
