"""The runs ``labkit decide`` plans: candidates, scale-downs stated, budget kept, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from labkit import styles
from labkit.config import RunSettings
from labkit.errors import ConfigError
from labkit.report.requirements import load_requirements, parse_requirements
from labkit.results.layout import SCHEMA_VERSION, SUMMARY, write_json
from labkit.runs.decision_runs import MachineLimits, candidate_styles, plan_decision, poll_interval_for, run_decision
from labkit.styles.registry import unregister

REQS = Path(__file__).resolve().parents[2] / "scenarios" / "requirements"


def payments():
    return load_requirements(REQS / "payments-provider.toml")


def test_every_allowed_style_runs_under_the_requirements_network_tls_and_rate() -> None:
    req = payments()
    plan = plan_decision(req, "out")
    # every registered style these consumers can use (they expose HTTPS, so webhooks too); the runs at their delivery cap
    # first, in display order, then the others (polling, 150 pollers), which take up what the first ones' start-up was mispredicted by
    assert sorted(p.style for p in plan.points) == sorted(styles.names())
    assert [p.style for p in plan.points] == [s for s in styles.names() if s != "polling"] + ["polling"]
    assert {"webhook", "polling"} <= {p.style for p in plan.points}
    for p in plan.points:
        assert p.settings.network is not None and p.settings.network.name == "cross-region"
        assert p.settings.tls is True
        # each merchant receives its own events at event_rate_per_s (a per-consumer audience): the provider publishes that x merchants
        assert p.settings.workload.rate_per_s == req.publish_rate(req.event_rate_per_s, p.settings_consumers)
        assert p.settings.styles == (p.style,)
    assert plan.results_dir == Path("out/decide/payments-provider-notifying-merchants")


def test_webhook_measured_at_the_users_consumers_when_the_machine_holds_them() -> None:
    plan = plan_decision(payments(), "out")
    webhook = next(p for p in plan.points if p.style == "webhook")
    assert webhook.settings.subscribers == 2000
    assert webhook.settings_consumers == 2000


def test_pollers_capped_by_the_poll_rate_and_the_cap_is_stated() -> None:
    limits = MachineLimits(max_polls_per_s=1000)
    req = payments()
    plan = plan_decision(req, "out", limits=limits)
    polling = next(p for p in plan.points if p.style == "polling")
    interval = poll_interval_for(req)
    assert polling.settings.poll_interval_s == interval
    assert polling.settings.pollers == int(1000 * interval) < 2000
    assert not polling.at_operating_point
    assert any("polls/s" in n and "of 2,000 pollers" in n for n in polling.scale_notes)


def test_consumers_beyond_one_process_are_capped_at_10000_and_said_so() -> None:
    req = parse_requirements({"consumers": 50_000, "event_rate_per_s": 0.01, "target_latency_p99_ms": 60_000})
    plan = plan_decision(req, "out", limits=MachineLimits(max_polls_per_s=1e9, max_deliveries_per_s=1e9, max_deliveries=10**9))
    for p in plan.points:
        assert p.settings_consumers == 10_000
        assert any("at most 10,000" in n for n in p.scale_notes)


def test_no_public_endpoint_means_no_webhook_run() -> None:
    req = load_requirements(REQS / "mobile-app-behind-nat.toml")
    plan = plan_decision(req, "out")
    assert "webhook" not in [p.style for p in plan.points]
    assert [s for s, _ in plan.skipped_styles] == ["webhook", "hybrid"]


def test_consumers_without_an_endpoint_also_get_a_long_polling_run() -> None:
    plan = plan_decision(load_requirements(REQS / "mobile-app-behind-nat.toml"), "out")
    long = [p for p in plan.points if p.label == "long-polling"]
    assert len(long) == 1
    assert long[0].style == "polling" and long[0].settings.long_poll_wait_s > 0
    assert long[0].run_id.startswith("long-polling-")
    assert long[0].params["variant"] == "long-polling"
    # the held poll is capped like a push, by deliveries, not by a poll rate it does not have
    assert not any("polls/s" in n for n in long[0].scale_notes)
    plain = [p for p in plan.points if p.label == "polling"]
    assert len(plain) == 1 and plain[0].settings.long_poll_wait_s == 0


def test_consumers_with_an_endpoint_get_no_long_polling_run() -> None:
    plan = plan_decision(load_requirements(REQS / "payments-provider.toml"), "out")
    assert all(p.settings.long_poll_wait_s == 0 for p in plan.points)


@pytest.mark.parametrize("name", ["payments-provider", "mobile-app-behind-nat", "internal-batch-sync", "public-live-feed"])
@pytest.mark.parametrize("minutes", [3.0, 13.0])
def test_the_plan_uses_the_time_budget(name: str, minutes: float) -> None:
    """The predicted command (start-up, publishing, drain, report) ends within 0.8-1.1 of the budget, never over the delivery cap."""
    limits = MachineLimits(minutes=minutes)
    req = load_requirements(REQS / f"{name}.toml")
    plan = plan_decision(req, "out", limits=limits)
    capped = any("at the cap" in n for n in plan.budget_notes)
    assert plan.estimated_total_s <= 1.1 * minutes * 60
    assert capped or plan.estimated_total_s >= 0.8 * minutes * 60
    assert plan.budget_notes[0].startswith(f"time budget {minutes:g} min")
    for p in plan.points:
        wl = p.settings.workload
        # deliveries: what each consumer receives, whoever the events are for (an audience keeps the deliveries per second)
        deliveries = wl.rate_per_s / req.publish_rate(1.0, p.settings_consumers) * wl.duration_s * p.settings_consumers
        assert deliveries <= limits.max_deliveries * 1.01 or wl.duration_s == 5.0


def test_what_is_already_spent_and_measured_overhead_shrink_the_publishing() -> None:
    from labkit.runs import overhead
    from labkit.runs.overhead import Overhead, RunCost

    req = load_requirements(REQS / "internal-batch-sync.toml")
    limits = MachineLimits(minutes=5)
    fresh = plan_decision(req, "out", limits=limits)
    slow = Overhead({overhead.key_of(p.label, p.settings): RunCost(((3, 40.0),)) for p in fresh.points}, report_s=30.0)
    later = plan_decision(req, "out", limits=limits, overhead=slow, spent_s=20.0)
    assert all(b.settings.workload.duration_s < a.settings.workload.duration_s for a, b in zip(fresh.points, later.points, strict=True))
    assert abs(later.estimated_total_s - 0.95 * 300) < 5


def test_a_rate_too_low_for_the_budget_is_scaled_up_and_said_so() -> None:
    req = parse_requirements({"name": "slow feed", "event_rate_per_s": 0.01, "consumers": 50, "target_latency_p99_ms": 60_000})
    plan = plan_decision(req, "out", limits=MachineLimits(minutes=2))
    for p in plan.points:
        wl = p.settings.workload
        assert wl.rate_per_s * wl.duration_s >= 0.95 * MachineLimits().min_events
        assert any("not 0.01" in n and "published at" in n for n in p.scale_notes)


def test_a_long_poll_interval_is_shortened_to_fit_the_run_and_said_so() -> None:
    req = load_requirements(REQS / "internal-batch-sync.toml")
    polling = next(p for p in plan_decision(req, "out").points if p.style == "polling")
    assert polling.settings.poll_interval_s < poll_interval_for(req)
    assert polling.settings.workload.duration_s >= 10 * polling.settings.poll_interval_s - 1e-9
    assert any("projected" in n for n in polling.scale_notes)


def test_point_ids_are_stable_and_follow_the_requirements() -> None:
    a = [p.point_id for p in plan_decision(payments(), "out").points]
    assert a == [p.point_id for p in plan_decision(payments(), "elsewhere").points]
    other = parse_requirements({**payments().model_dump(exclude={"network", "budget"}), "tls": False, "network": "cross-region"})
    assert a != [p.point_id for p in plan_decision(other, "out").points]


def test_subscribers_go_to_10000_not_beyond() -> None:
    assert RunSettings(subscribers=10_000).subscribers == 10_000
    with pytest.raises(ValueError):
        RunSettings(subscribers=10_001)


@pytest.fixture
def only_styles_needing_a_public_endpoint() -> Iterator[list[str]]:
    """The registry without every style a consumer can use from behind NAT (restored afterwards)."""
    removed = [(info, styles.unit(info.name)) for info in styles.all_styles() if not info.needs_public_endpoint]
    for info, _ in removed:
        unregister(info.name)
    try:
        yield list(styles.names())
    finally:
        for info, unit in removed:
            styles.register(info, unit)


def test_no_candidate_style_is_an_error(only_styles_needing_a_public_endpoint: list[str]) -> None:
    req = load_requirements(REQS / "mobile-app-behind-nat.toml")  # phones: no public HTTPS endpoint
    assert only_styles_needing_a_public_endpoint, "the shipped registry has a push style that needs an endpoint"
    allowed, refused = candidate_styles(req)
    assert allowed == []
    assert [name for name, _ in refused] == only_styles_needing_a_public_endpoint
    assert all("public HTTPS endpoint" in why for _, why in refused)
    with pytest.raises(ConfigError, match="no registered delivery style suits them"):
        plan_decision(req, "out")


def test_points_already_done_are_skipped_unless_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.lab import pipeline

    plan = plan_decision(payments(), tmp_path, limits=replace(MachineLimits(), minutes=2))
    first = plan.points[0]
    done_dir = plan.results_dir / first.run_id
    summary = {"schema_version": SCHEMA_VERSION, "run_id": first.run_id, "point": first.point_id, "styles": {}, "workload": {}}
    write_json(done_dir / SUMMARY, summary)
    ran: list[str] = []
    monkeypatch.setattr(pipeline, "run", lambda settings, **kw: ran.append(kw["run_id"]))
    outcomes = run_decision(plan)
    assert [o.skipped for o in outcomes] == [True] + [False] * (len(plan.points) - 1)
    assert ran == [p.run_id for p in plan.points[1:]]
    ran.clear()
    run_decision(plan, force=True)
    assert ran == [p.run_id for p in plan.points]
