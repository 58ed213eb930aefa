"""The webhook model's fan-out queue: an event to F subscriptions leaves as F deliveries, one after another.

The spacing between two of them is the calibration's (``dispatch_cost_s``, the
dispatcher's loopback spacing) or the dispatcher's concurrency bound (an attempt
through the network / the deliveries it holds in flight), whichever is longer.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labkit.config import RunSettings, WorkloadSettings
from labkit.config.network import parse_network
from labkit.model import calibration as cal
from labkit.model.fanout import fanout_queueing_s
from labkit.styles import unit

COSTS = {"delivery_s": 0.0012, "attempt_s": 0.0010, "dispatch_cost_s": 0.0003}
CAL = cal.Calibration("fan0ut", {}, "0", "now", {"webhook": dict(COSTS)})
OLD = cal.Calibration("old0", {}, "0", "now", {"webhook": {"delivery_s": 0.0012, "attempt_s": 0.0010}})


def _settings(audience: str, *, rtt: str | None = None, **kw: object) -> RunSettings:
    wl = WorkloadSettings(rate_per_s=0.1 if audience == "broadcast" else 200.0, duration_s=40)
    extra = {"network": parse_network(rtt)} if rtt else {}
    return RunSettings(styles=("webhook",), subscribers=2000, audience=audience, workload=wl, **extra, **kw)  # type: ignore[arg-type]


def test_a_broadcast_to_2000_waits_its_fanout_and_one_consumers_event_does_not() -> None:
    style = unit("webhook")
    one = style.predict(_settings("per-consumer"), CAL)
    every = style.predict(_settings("broadcast"), CAL)
    assert one is not None and every is not None
    assert one["fanout"]["deliveries_per_event"] == 1 and one["fanout"]["queueing_mean_ms"] == 0
    assert "latency_p99_ms" not in one  # a single delivery: the model has no tail of its own
    assert every["fanout"]["deliveries_per_event"] == 2000 and every["fanout"]["bound_by"] == "dispatch cost"
    # loopback: the same delivery, plus (F-1)/2 x the calibrated spacing on the mean, 0.99 (F-1) x it on the p99
    assert every["latency_mean_ms"] - one["latency_mean_ms"] == pytest.approx(1999 / 2 * 0.3)
    assert every["latency_p99_ms"] == pytest.approx(one["latency_mean_ms"] + 0.99 * 1999 * 0.3)
    assert every["parameters"]["dispatch_cost_s"] == {
        "kind": "calibration",
        "value": 0.0003,
        "from": "calibration fan0ut: the dispatcher's loopback spacing between two deliveries of one event",
    }
    assert "the fan-out's queue" in every["assumes"]


def test_topics_wait_for_a_topics_subscribers() -> None:
    block = unit("webhook").predict(_settings("topics", topics=20, subscriptions=2), CAL)
    assert block is not None and block["fanout"]["deliveries_per_event"] == 200
    assert block["fanout"]["queueing_mean_ms"] == pytest.approx(fanout_queueing_s(200, 0.0003) * 1000)


def test_across_a_long_round_trip_the_dispatchers_concurrency_paces_the_fanout() -> None:
    block = unit("webhook").predict(_settings("broadcast", rtt="rtt=300ms"), CAL)
    assert block is not None
    fan = block["fanout"]
    # 2,000 subscriptions: the dispatcher holds 512 in flight, each about 301 ms: one start per ~0.59 ms > 0.3 ms
    assert fan["dispatch_concurrency"] == 512 and fan["bound_by"] == "concurrency"
    assert fan["spacing_ms"] == pytest.approx(block["attempt_ms"] / 512) and fan["spacing_ms"] > 0.3
    assert fan["queueing_p99_ms"] == pytest.approx(0.99 * 1999 * fan["spacing_ms"])


def test_a_calibration_without_the_dispatch_cost_counts_the_concurrency_bound_only_and_says_so() -> None:
    block = unit("webhook").predict(_settings("broadcast"), OLD)
    assert block is not None and block["base_source"] == "calibration old0"  # the base itself is whole
    assert block["parameters"]["dispatch_cost_s"]["value"] is None and block["fanout"]["bound_by"] == "concurrency"
    assert "no calibrated dispatch cost" in block["assumes"]
    assert block["fanout"]["spacing_ms"] == pytest.approx(block["attempt_ms"] / 512)


def _run(subscribers: int, gap_ns: int, events: int = 5) -> SimpleNamespace:
    """A calibration run's records: each event to every subscriber, ``gap_ns`` apart, 1 ms after it was created."""
    rows = [("webhook", f"s{k}", e, e * 10**8, e * 10**8 + 10**6 + k * gap_ns) for e in range(1, events + 1) for k in range(subscribers)]
    return SimpleNamespace(events=rows, delivery_rtt_s=0.0009)


def test_the_calibration_measures_a_delivery_alone_and_the_spacing_of_a_fanout() -> None:
    style = unit("webhook")
    assert style.calibration_runs() == (1, 20) and "dispatch_cost_s" in style.calibration_cost_names()
    single = style.calibration_costs(_run(1, 0), RunSettings(styles=("webhook",), subscribers=1))
    assert single == pytest.approx({"delivery_s": 0.001, "attempt_s": 0.0009})
    fan = style.calibration_costs(_run(20, 250_000), RunSettings(styles=("webhook",), subscribers=20))
    assert fan == pytest.approx({"dispatch_cost_s": 0.00025})  # its mean holds the queue: not a delivery's cost
    assert style.calibration_costs(_run(20, 250_000, events=0), RunSettings(styles=("webhook",), subscribers=20)) == {}
