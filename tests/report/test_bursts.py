"""Runs where every consumer got every event at once: the report says their latency includes that queue."""

from __future__ import annotations

from pathlib import Path

from labkit.report.bursts import burst_reasons
from labkit.report.observations import Obs
from labkit.report.reasons import Case
from labkit.report.requirements import load_requirements

REQS = Path(__file__).resolve().parents[2] / "scenarios" / "requirements"


def _obs(style: str, variant: str, consumers: int, p50: float, p99: float, interval_s: float | None = None) -> Obs:
    row = {"latency_ms.p50": p50, "latency_ms.p99": p99}
    return Obs(f"{style}-{consumers}", style, variant, 0.5, interval_s, None, consumers, "poisson", row)


def _case(*obs: Obs) -> Case:
    return Case(load_requirements(REQS / "payments-provider.toml"), list(obs))


def test_pushed_runs_at_scale_are_named_with_their_measured_latency() -> None:
    case = _case(
        _obs("webhook", "webhook push", 2000, 408.0, 1305.0),
        _obs("sse", "Server-Sent Events", 2000, 89.0, 157.0),
        _obs("polling", "polling", 150, 108.0, 182.0, interval_s=0.15),  # on a timetable: its own schedule spreads it
    )
    burst_reasons(case)
    (reason,) = case.reasons
    assert "all 2,000 consumers at once" in reason.text
    assert "webhook push p50 408 ms, p99 1,305 ms" in reason.text and "Server-Sent Events p50 89 ms, p99 157 ms" in reason.text
    assert "polling p50" not in reason.text and "0.5/s each" in reason.text
    assert reason.favours == "webhook push and Server-Sent Events"
    assert {(e.run_id, e.column) for e in reason.evidence} == {
        (run, col) for run in ("webhook-2000", "sse-2000") for col in ("latency_ms.p50", "latency_ms.p99")
    }


def test_long_polling_answers_every_held_poll_at_once_and_counts() -> None:
    case = _case(_obs("polling", "long polling", 2000, 276.0, 498.0, interval_s=1.6))
    burst_reasons(case)
    (reason,) = case.reasons
    assert "long polling p50 276 ms, p99 498 ms" in reason.text


def test_a_handful_of_consumers_is_no_burst() -> None:
    case = _case(_obs("webhook", "webhook push", 20, 150.0, 900.0), _obs("websocket", "WebSocket", 99, 140.0, 800.0))
    burst_reasons(case)
    assert case.reasons == []


def test_a_p99_far_under_the_target_is_left_alone() -> None:
    # the payments target is 250 ms: a queue inside a p99 under a quarter of it cannot change the decision
    case = _case(_obs("sse", "Server-Sent Events", 2000, 30.0, 62.0), _obs("websocket", "WebSocket", 2000, 40.0, 63.0))
    burst_reasons(case)
    (reason,) = case.reasons
    assert "WebSocket p50 40 ms" in reason.text and "Server-Sent" not in reason.text
