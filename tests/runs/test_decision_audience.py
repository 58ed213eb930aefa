"""labkit decide runs the audience the requirements declare, at the same deliveries per second."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import ConfigError
from labkit.report.bursts import burst_runs
from labkit.report.observations import Obs
from labkit.report.reasons import Case
from labkit.report.requirements import load_requirements, parse_requirements
from labkit.runs.decision_runs import plan_decision

REQS = Path(__file__).resolve().parents[2] / "scenarios" / "requirements"
BASE = {"target_latency_p99_ms": 250, "event_rate_per_s": 0.5, "consumers": 2000}


def test_shipped_examples_declare_their_audience() -> None:
    payments = load_requirements(REQS / "payments-provider.toml")
    assert (payments.audience, payments.consumer_skew) == ("per-consumer", "zipf:1.1")
    assert load_requirements(REQS / "mobile-app-behind-nat.toml").audience == "per-consumer"
    batch = load_requirements(REQS / "internal-batch-sync.toml")
    assert (batch.audience, batch.consumers) == ("broadcast", 3)


def test_decide_runs_the_declared_audience_with_the_same_deliveries_per_second() -> None:
    payments = load_requirements(REQS / "payments-provider.toml")
    for point in plan_decision(payments, "out").points:
        s = point.settings
        assert (s.audience, s.consumer_skew) == ("per-consumer", "zipf:1.1")
        consumers = max(s.pollers, s.subscribers)
        # each merchant receives 0.5 events/s on average: the provider publishes 0.5 x merchants per second
        assert s.workload.rate_per_s == pytest.approx(0.5 * consumers)
    topics = parse_requirements({**BASE, "audience": "topics", "topics": 10, "subscriptions": 2})
    for point in plan_decision(topics, "out").points:
        s = point.settings
        assert (s.topics, s.subscriptions) == (10, 2)
        assert s.workload.rate_per_s == pytest.approx(0.5 * 10 / 2)  # an event reaches 2 in 10 consumers
    broadcast = parse_requirements(BASE)
    assert all(p.settings.workload.rate_per_s == 0.5 and p.settings.audience == "broadcast" for p in plan_decision(broadcast, "out").points)


@pytest.mark.parametrize(
    "extra, key",
    [
        ({"audience": "some"}, "audience"),
        ({"audience": "per-consumer", "consumer_skew": "zipf:-1"}, "consumer_skew"),
        ({"audience": "topics", "topics": 4}, "subscriptions"),
        ({"audience": "topics", "topics": 2, "subscriptions": 3}, "subscriptions"),
    ],
)
def test_bad_audience_in_requirements_is_one_line(extra: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_requirements({**BASE, **extra}, source="req.toml")
    assert str(err.value).startswith("req.toml: ") and key in str(err.value) and "\n" not in str(err.value)


def test_the_burst_note_is_for_broadcast_runs_only() -> None:
    req = load_requirements(REQS / "payments-provider.toml")

    def obs(audience: str) -> Obs:
        row = {"latency_ms.p50": 400.0, "latency_ms.p99": 1300.0, "settings.audience": audience}
        return Obs(f"webhook-{audience}", "webhook", "webhook push", 0.5, None, None, 2000, "poisson", row)

    runs = burst_runs(Case(req, [obs("broadcast"), obs("per-consumer")]))
    assert [o.run_id for o in runs] == ["webhook-broadcast"]
