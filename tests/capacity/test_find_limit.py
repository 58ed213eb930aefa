"""A search's verdict from its steps table and its outcome: the bracket, what limited it, the lower-bound label, CPU there."""

from __future__ import annotations

from typing import Any

import pandas as pd

from labkit.capacity.analysis import cpu_at, find_limit

STEPS = pd.DataFrame(
    {
        "step": [1, 2, 3, 4, 5],
        "users": [100, 200, 400, 300, 350],
        "rps": [100.0, 200.0, 390.0, 300.0, 349.0],
        "p99_ms": [5.0, 8.0, 900.0, 20.0, 60.0],
        "server_cpu_percent": [10.0, 20.0, 95.0, 70.0, 80.0],
        "load_generator_cpu_percent": [5.0, 10.0, 30.0, 20.0, 25.0],
    }
)


def outcome(held: int, failed: int | None, **kw: Any) -> dict[str, Any]:
    return {
        "held": {"load": held, "why": "p99 ok"},
        "failed": {"load": failed, "why": "p99 900 ms > 100 ms", "clients_saturated": kw.get("clients", False)} if failed else None,
        "within_tolerance": kw.get("within", True),
        "tolerance": 0.1,
        "limited_by": kw.get("limited_by", "system"),
        "stop_reason": kw.get("stop", "bracketed within 10%"),
    }


def test_the_held_step_is_the_capacity_and_a_busy_server_limits_it() -> None:
    cap = find_limit(STEPS, outcome(350, 400))
    assert (cap.users, cap.step, cap.rps, cap.p99_ms) == (350, 5, 349.0, 60.0)
    assert cap.limited_by == "server CPU" and not cap.lower_bound
    assert "350 users held" in cap.reason and "400 users breached" in cap.reason


def test_locust_out_of_cpu_at_the_breach_makes_a_lower_bound() -> None:
    cap = find_limit(STEPS, outcome(350, 400, clients=True))
    assert cap.limited_by == "load generator CPU" and cap.lower_bound


def test_no_breach_is_a_lower_bound_at_the_cap_or_the_time_limit() -> None:
    at_cap = find_limit(STEPS, outcome(400, None, limited_by="maximum", stop="held at the maximum of 400"))
    assert at_cap.limited_by == "max users" and at_cap.lower_bound and at_cap.users == 400
    timed = find_limit(STEPS, outcome(200, None, limited_by="time budget"))
    assert timed.limited_by == "time limit" and timed.lower_bound


def test_a_bracket_wider_than_the_tolerance_says_so_and_latency_alone_limits() -> None:
    slow = STEPS.assign(server_cpu_percent=[5.0] * 5)
    cap = find_limit(slow, outcome(300, 400, within=False, stop="the time limit ended the search"))
    assert cap.limited_by == "latency" and "wider than 10%" in cap.reason


def test_cpu_at_reads_both_sides_in_one_step() -> None:
    assert cpu_at(STEPS, 400) == {"server_percent": 95.0, "load_generator_percent": 30.0}
    assert cpu_at(STEPS, 999) == {"server_percent": None, "load_generator_percent": None}
