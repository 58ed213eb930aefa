"""A cached calibration is used as it is, unless it lacks a cost a style declares: then it is measured again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from labkit.lab import calibrate
from labkit.model import calibration as cal
from labkit.styles import units

WHOLE = {u.info.name: {n: 0.001 for n in u.calibration_cost_names()} for u in units() if u.calibrates()}


def _cal(costs: dict[str, dict[str, float]], id_: str) -> cal.Calibration:
    return cal.Calibration(id_, {}, "0", "now", costs)


def _using(monkeypatch: pytest.MonkeyPatch, cached: cal.Calibration) -> list[tuple[str, int, int]]:
    """Run ``calibration_for_run`` with ``cached`` in the cache and a measurement that records its progress lines."""
    monkeypatch.delenv(cal.ENV, raising=False)
    monkeypatch.setattr(cal, "cached", lambda: cached)
    lines: list[tuple[str, int, int]] = []

    async def measure(progress: Any = None, phase: str = calibrate.PHASE) -> tuple[cal.Calibration, Path]:
        progress(phase, 0, 1)
        return _cal(WHOLE, "fresh"), Path("unused")

    monkeypatch.setattr(calibrate, "arecalibrate", measure)
    chosen = asyncio.run(calibrate.calibration_for_run(lambda *a: lines.append(a)))
    return [(chosen.id if chosen else "none", 0, 0), *lines]


def test_a_whole_cached_calibration_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    assert calibrate.missing_costs(_cal(WHOLE, "whole")) == []
    assert _using(monkeypatch, _cal(WHOLE, "whole")) == [("whole", 0, 0)]


def test_a_calibration_from_before_the_dispatch_cost_is_measured_again_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    old = {name: dict(costs) for name, costs in WHOLE.items()}
    del old["webhook"]["dispatch_cost_s"]
    assert calibrate.missing_costs(_cal(old, "old")) == ["webhook dispatch_cost_s"]
    chosen, *lines = _using(monkeypatch, _cal(old, "old"))
    assert chosen[0] == "fresh"
    assert lines == [("calibrating this machine again (the cached calibration lacks webhook dispatch_cost_s)", 0, 1)]


def test_the_record_says_which_runs_the_calibration_made(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, int]] = []

    class Made:  # stands in for a loopback run: records which style ran with how many consumers
        def __init__(self, style: Any, settings: Any, workload: Any, work: Path) -> None:
            self.key = (style.info.name, settings.subscribers)
            assert settings.pollers == settings.subscribers

        async def arun(self) -> tuple[str, int]:
            made.append(self.key)
            return self.key

    monkeypatch.setattr(calibrate, "Session", Made)
    for u in units():
        monkeypatch.setattr(u, "calibration_costs", lambda run, settings: {f"{run[0]}_{run[1]}_s": 0.001})
    measured = asyncio.run(calibrate.ameasure())
    plan = calibrate.calibration_plan(calibrate.calibration_settings())
    assert plan["webhook"] == (1, 20)  # the single delivery and the fan-out run
    assert made == [(name, n) for name, runs in plan.items() for n in runs]
    assert measured.costs["webhook"] == {"webhook_1_s": 0.001, "webhook_20_s": 0.001}  # every run's costs, merged
    # both keys stay in the file (schema_version 1 only gains keys): every run's consumers, and the first (base) run's
    assert measured.measured_with["consumers_per_run"] == {name: list(runs) for name, runs in plan.items()}
    assert measured.measured_with["consumers"] == {name: runs[0] for name, runs in plan.items()}
    assert set(plan) == {u.info.name for u in units() if u.calibrates()}
