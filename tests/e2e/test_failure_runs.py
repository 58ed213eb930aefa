"""The failure experiment's promise, on real processes: crashes lose nothing and process nothing twice.

Receivers, pollers and the provider are SIGKILLed mid-run and restarted on
the same database file (and port); every event the provider committed still
reaches every consumer, once. Catch-up times and duplicates are reported,
not held to thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labkit.results.layout import load_events, load_results
from tests.helpers.faults import no_loss, run_fault

pytestmark = pytest.mark.slow  # real servers for many seconds, a browser, benchmarks or Locust


def _run(tmp_path: Path, fault: dict[str, Any], styles: tuple[str, ...] = ("webhook", "polling")) -> dict[str, Any]:
    return run_fault(tmp_path, fault, styles, poll_interval_s=0.25)


def test_consumers_sigkilled_twice_lose_nothing(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"kind": "consumer_kill", "at_s": [0.8, 2.0], "restart_after_s": 0.2})
    for name in ("webhook", "polling"):
        f = no_loss(summary["styles"][name])
        assert f["consumer_restarts"] == 2 and len(f["episodes"]) == 2
        assert all(e["catch_up_s"] is not None for e in f["episodes"])
    # The poller resumed from its stored cursor: nothing fetched twice, let alone processed twice.
    assert summary["styles"]["polling"]["fault"]["duplicates_seen"] == 0
    # A fault run brackets the same window as any run: the poller's window counters span its restarts.
    polling = summary["styles"]["polling"]
    assert polling["polls_in_window"] > 0 and polling["requests_in_window"] > 0
    assert polling["requests_per_event"] == pytest.approx(polling["requests_in_window"] / polling["published"])
    # Results read back like any other run's, with the fault's numbers as columns.
    df = load_results(tmp_path / "run")
    assert set(df["style"]) == {"webhook", "polling"}
    assert (df["fault.lost"] == 0).all() and "fault.catch_up_s" in df.columns and (df["fault.kind"] == "consumer_kill").all()
    events = load_events(tmp_path / "run")
    assert not events.duplicated(["style", "consumer", "event_id"]).any()


def test_provider_sigkilled_mid_dispatch_resumes_its_outbox(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"kind": "provider_kill", "at_s": [1.2], "restart_after_s": 0.2, "receiver_delay_ms": 100.0})
    for name in ("webhook", "polling"):
        f = no_loss(summary["styles"][name])
        assert f["provider_restarts"] == 1
    webhook = summary["styles"]["webhook"]["fault"]
    assert webhook["episodes"][0]["in_flight_at_kill"]  # the kill landed with deliveries in flight
    # Deliveries in flight were processed but never acknowledged: resent after the restart, they are
    # duplicates the receiver saw and acknowledged without processing again. How many depends on the
    # moment of the kill; each one cost the receiver a request beyond the events it holds.
    duplicates = webhook["duplicates_seen"]
    assert isinstance(duplicates, int)
    assert summary["styles"]["webhook"]["requests"] >= webhook["delivered"] + duplicates


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "receiver_slow", "at_s": 0.5, "duration_s": 1.5, "delay_ms": 1200.0, "delivery_timeout_s": 0.5},
        {"kind": "receiver_errors", "at_s": 0.5, "duration_s": 1.5, "rate": 0.6, "status": 503},
    ],
    ids=["slower-than-timeout", "5xx"],
)
def test_failing_receivers_get_everything_through_retries(tmp_path: Path, fault: dict[str, Any]) -> None:
    summary = _run(tmp_path, fault, styles=("webhook",))
    f = no_loss(summary["styles"]["webhook"])
    assert f["retries"] > 0 and f["dead_lettered"] == 0
    if fault["kind"] == "receiver_slow":
        # Processed, then timed out before the answer: every retry is a duplicate, processed once.
        assert f["duplicates_seen"] > 0
