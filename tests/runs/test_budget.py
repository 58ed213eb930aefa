"""Keeping ``labkit decide --max-minutes``: the runs left are re-planned from the time really left (fake clocks, no timing)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from labkit.report.requirements import load_requirements, parse_requirements
from labkit.results.layout import SCHEMA_VERSION, SUMMARY, write_json
from labkit.runs import overhead
from labkit.runs.budget import Budget
from labkit.runs.decision_runs import AIM, GROWTH_FLOOR, MachineLimits, plan_decision, run_decision
from labkit.runs.overhead import Overhead, RunCost

REQS = Path(__file__).resolve().parents[2] / "scenarios" / "requirements"
LIMITS = replace(MachineLimits(), minutes=3)


def measured(req: Any, startup_s: float = 8.0) -> Overhead:
    """An overhead model as if every candidate of ``req`` had been measured here at ``startup_s``."""
    plan = plan_decision(req, "out", limits=LIMITS)
    return Overhead(
        {overhead.key_of(p.label, p.settings): RunCost(((1, startup_s), (100, startup_s)), throughput_per_s=1e6) for p in plan.points},
        report_s=5.0,
    )


def durations(plan: Any) -> dict[str, float]:
    return {p.label: p.settings.workload.duration_s for p in plan.points}


@pytest.mark.parametrize("name", ["payments-provider", "public-live-feed", "internal-batch-sync", "mobile-app-behind-nat"])
def test_an_overrun_gives_the_later_runs_less_and_a_quick_run_gives_them_more(name: str) -> None:
    req = load_requirements(REQS / f"{name}.toml")
    ov = measured(req)
    first = plan_decision(req, "out", limits=LIMITS, overhead=ov)
    done = frozenset({first.points[0].label})
    planned = sum(first.points[0].planned)
    as_planned = plan_decision(req, "out", limits=LIMITS, overhead=ov, spent_s=planned, done=done)
    late = plan_decision(req, "out", limits=LIMITS, overhead=ov, spent_s=planned + 40.0, done=done)
    early = plan_decision(req, "out", limits=LIMITS, overhead=ov, spent_s=planned - 20.0, done=done)
    assert [p.label for p in late.points] == [p.label for p in first.points[1:]]
    on_time, less, more = durations(as_planned), durations(late), durations(early)
    for label, d in on_time.items():
        capped = any(label in n and "at the cap" in n for n in as_planned.budget_notes)  # a run at its delivery cap keeps it
        assert less[label] < d or less[label] == pytest.approx(5.0)
        assert more[label] > d or capped
    # the re-plan still aims the whole command at AIM x the budget, what was spent included
    assert as_planned.estimated_total_s == pytest.approx(first.estimated_total_s, abs=2.0)


def test_a_requirement_at_001_events_per_s_gets_runs_even_when_the_budget_is_spent() -> None:
    req = parse_requirements({"name": "slow feed", "event_rate_per_s": 0.01, "consumers": 50, "target_latency_p99_ms": 60_000})
    first = plan_decision(req, "out", limits=LIMITS)
    spent = LIMITS.minutes * 60  # every second already gone
    later = plan_decision(req, "out", limits=LIMITS, spent_s=spent, done=frozenset({first.points[0].label}))
    assert len(later.points) == len(first.points) - 1
    for p in later.points:
        wl = p.settings.workload
        assert wl.rate_per_s * wl.duration_s >= 0.95 * LIMITS.min_events
        assert any("not 0.01" in n for n in p.scale_notes)
    assert any("may take longer than asked" in n for n in later.budget_notes)


def test_a_run_starts_at_most_twice_the_consumers_ever_started_here_beyond_the_floor_and_says_so() -> None:
    # 10,000 consumers, with the request caps out of the way: 2,500 measured, so at most 5,000 now, whatever the line says
    req = parse_requirements({"name": "big", "event_rate_per_s": 0.05, "consumers": 10_000, "target_latency_p99_ms": 250})
    limits = replace(LIMITS, minutes=120, max_deliveries_per_s=1e6, max_polls_per_s=1e6, max_deliveries=10**7)
    first = plan_decision(req, "out", limits=limits)
    cheap = Overhead({overhead.key_of(p.label, p.settings): RunCost(((1, 8.0), (2500, 8.0)), throughput_per_s=1e6) for p in first.points})
    plan = plan_decision(req, "out", limits=limits, overhead=cheap)
    assert plan.points and all(p.settings_consumers == 5000 for p in plan.points)
    assert all(any("above the 2,500 a run started here" in n for n in p.scale_notes) for p in plan.points)
    # only probed (a first use: one consumer each): at most the floor, what start-up was measured linear to here
    probed = Overhead({k: RunCost(((1, 8.0),), throughput_per_s=1e6) for k in cheap.runs})
    fresh = plan_decision(req, "out", limits=limits, overhead=probed)
    assert max(p.settings_consumers for p in fresh.points) == GROWTH_FLOOR


def test_a_first_decide_runs_the_payments_pushes_at_all_2000_merchants_within_30_minutes() -> None:
    # only the first use's probes measured (one consumer each, 8-13 s): start-up at the stated default per consumer
    req = load_requirements(REQS / "payments-provider.toml")
    limits = replace(LIMITS, minutes=30)
    first = plan_decision(req, "out", limits=limits)
    probed = Overhead({overhead.key_of(p.label, p.settings): RunCost(((1, 12.0),)) for p in first.points})
    plan = plan_decision(req, "out", limits=limits, overhead=probed)
    pushed = [p for p in plan.points if p.settings.subscribers > 1 or p.settings_consumers > 150]
    assert pushed and all(p.settings_consumers == 2000 for p in pushed)
    assert not any("consumers: starting each" in n or "a run started here" in n for p in pushed for n in p.scale_notes)
    # polling keeps its stated poll-rate cap: 2,000 pollers at T = 0.15 s would be over 13,000 polls/s
    polled = [p for p in plan.points if p.settings_consumers < 2000]
    assert polled and all(any("polls" in n for n in p.scale_notes) for p in polled)


class FakeRuns:
    """``pipeline.run`` that writes a summary and moves a fake clock: every run starts in ``startup_s``, then publishes and drains."""

    def __init__(self, startup_s: float) -> None:
        self.now = 0.0
        self.startup_s = startup_s
        self.durations: list[float] = []

    def clock(self) -> float:
        return self.now

    def run(self, settings: Any, **kw: Any) -> None:
        params = kw["extra"]["params"]
        self.durations.append(settings.workload.duration_s)
        self.now += self.startup_s + settings.workload.duration_s + params["planned_s"]["drain"]
        summary = {
            "schema_version": SCHEMA_VERSION,
            "run_id": kw["run_id"],
            **kw["extra"],
            "workload": {"duration_s": settings.workload.duration_s},
            "styles": {params["style"]: {"drain_s": params["planned_s"]["drain"], "delivered": 10}},
        }
        write_json(Path(kw["results_dir"]) / SUMMARY, summary)


@pytest.mark.parametrize("overrun_s", [12.0, -5.0])
def test_each_run_is_re_planned_from_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrun_s: float) -> None:
    from labkit.lab import pipeline
    from labkit.runs import campaign

    req = load_requirements(REQS / "payments-provider.toml")
    ov = measured(req)
    plan = plan_decision(req, tmp_path, limits=LIMITS, overhead=ov)
    fake = FakeRuns(8.0 + overrun_s)  # the model says 8 s: this machine is slower (or quicker) today
    monkeypatch.setattr(pipeline, "run", fake.run)
    monkeypatch.setattr(campaign.time, "monotonic", fake.clock)  # the campaign's elapsed time is the fake clock's
    logged: list[str] = []
    budget = Budget(req, tmp_path, LIMITS, 1, fake.clock, ov, plan, logged.append, save=False)
    outcomes = run_decision(plan, on_run=budget.ran, replan=budget)
    assert [o.point.label for o in outcomes] == [p.label for p in plan.points]
    assert len(budget.replans) == len(plan.points) - 1
    first = [p.settings.workload.duration_s for p in plan.points]
    # an overrun shortens every later run, a quick run lengthens them (the first runs as first planned)
    assert fake.durations[0] == first[0]
    later = list(zip(fake.durations[1:], first[1:], strict=True))
    assert all(d < f for d, f in later) if overrun_s > 0 else all(d > f for d, f in later)
    # what each run took beside its plan is said, and the re-plans are in the notes the report lists
    assert any(line.startswith(f"budget: {plan.points[0].label}: took") and "planned" in line for line in logged)
    assert all(r in outcomes[-1].point.budget_notes for r in budget.replans)
    # the model learnt each run's start-up, and the later runs were planned with the error the runs showed
    key = overhead.key_of(plan.points[0].label, plan.points[0].settings)
    assert budget.ov.cost(key).samples[-1][1] == pytest.approx(8.0 + overrun_s)
    assert budget.ov.bias_s == pytest.approx(overrun_s)
    # so the whole command, by the fake clock, ends at the aim: the first run's error was absorbed by the later ones
    assert fake.now + ov.report_seconds == pytest.approx(AIM * LIMITS.minutes * 60, abs=3.0)
