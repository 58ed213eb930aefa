"""The step shape's logic, driven by fake stats: it adds users, stops at a breach, respects limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labkit.capacity.stepping import (
    RampPlan,
    StepController,
    StepPlan,
    StepStats,
    default_steps,
    judge,
    ramp_users,
)


class FakeProbe:
    """Stats as a function of the users running; ``since`` describes the step just judged."""

    def __init__(self, behaviour: Callable[[int], StepStats]) -> None:
        self.behaviour = behaviour
        self.users = 0
        self.snapshots = 0

    def snapshot(self) -> int:
        self.snapshots += 1
        return self.snapshots

    def since(self, mark: int) -> StepStats:
        assert mark == self.snapshots, "a step is judged against its own mark"
        return self.behaviour(self.users)


def drive(plan: StepPlan, behaviour: Callable[[int], StepStats], seconds: int = 1000) -> tuple[StepController, list[int]]:
    """Tick once a second, as Locust does, until the controller stops; returns the users asked for."""
    probe = FakeProbe(behaviour)
    ctl = StepController(plan, probe)
    asked = []
    for t in range(seconds):
        result = ctl.tick(float(t))
        if result is None:
            break
        users, rate = result
        assert rate > 0
        asked.append(users)
        probe.users = users
    else:  # pragma: no cover
        raise AssertionError("the controller never stopped")
    return ctl, asked


def latency_grows(users: int) -> StepStats:
    return StepStats(requests=100 * users, failures=0, p99_ms=users * 2.0)  # 2 ms per user


def test_adds_users_step_by_step_then_stops_at_the_first_breach():
    plan = StepPlan(max_users=100, step_users=10, step_seconds=5, slo_p99_ms=55, settle_seconds=1)
    ctl, asked = drive(plan, latency_grows)
    assert sorted(set(asked)) == [10, 20, 30]
    assert asked == sorted(asked), "users only ever grow"
    assert [o.users for o in ctl.outcomes] == [10, 20, 30]
    assert [o.met for o in ctl.outcomes] == [True, True, False]
    assert "SLO breached at 30 users" in ctl.stop_reason
    assert "p99 60 ms > 55 ms" in ctl.stop_reason
    assert ctl.tick(999.0) is None, "once stopped, it stays stopped"


def test_each_step_is_held_for_step_seconds():
    plan = StepPlan(max_users=30, step_users=10, step_seconds=4, slo_p99_ms=1000, settle_seconds=1)
    _, asked = drive(plan, latency_grows)
    assert asked.count(10) == 4 and asked.count(20) == 4


def test_failure_ratio_breaches_the_slo_too():
    def failing(users: int) -> StepStats:
        return StepStats(requests=1000, failures=50 if users >= 20 else 0, p99_ms=5.0)

    plan = StepPlan(max_users=100, step_users=10, step_seconds=3, slo_p99_ms=100, max_failure_ratio=0.01, settle_seconds=1)
    ctl, _ = drive(plan, failing)
    assert ctl.outcomes[-1].users == 20 and not ctl.outcomes[-1].met
    assert "failure ratio 5.0% > 1.0%" in ctl.stop_reason


def test_never_exceeds_max_users_and_stops_after_judging_the_last_step():
    plan = StepPlan(max_users=25, step_users=10, step_seconds=3, slo_p99_ms=1000, settle_seconds=0)
    ctl, asked = drive(plan, latency_grows)
    assert max(asked) == 25 and sorted(set(asked)) == [10, 20, 25]
    assert [o.met for o in ctl.outcomes] == [True, True, True]
    assert ctl.stop_reason.startswith("max users (25)")


def test_stops_at_the_time_limit_even_mid_step():
    plan = StepPlan(max_users=1000, step_users=10, step_seconds=5, slo_p99_ms=1e9, settle_seconds=1, time_limit_s=12)
    ctl, asked = drive(plan, latency_grows)
    assert len(asked) == 12
    assert max(asked) == 30
    assert ctl.stop_reason.startswith("time limit of 12 s")
    assert len(ctl.outcomes) == 2, "the cut-short step is not judged"


def test_a_step_without_completed_requests_is_a_breach():
    plan = StepPlan(max_users=50, step_users=10, step_seconds=3, slo_p99_ms=100, settle_seconds=1)
    ctl, _ = drive(plan, lambda users: StepStats(0, 0, None))
    assert len(ctl.outcomes) == 1 and "no requests completed" in ctl.stop_reason


def test_judge():
    assert judge(StepStats(100, 0, 10.0), 10.0, 0.01)[0]
    assert not judge(StepStats(100, 2, 10.0), 10.0, 0.01)[0]
    assert not judge(StepStats(100, 0, 10.5), 10.0, 0.01)[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_users": 0},
        {"step_users": 0},
        {"step_seconds": 0},
        {"settle_seconds": 5},
        {"slo_p99_ms": -1},
        {"max_failure_ratio": 2},
        {"time_limit_s": 0},
    ],
)
def test_plan_refuses_nonsense(kwargs):
    base = {"max_users": 10, "step_users": 5, "step_seconds": 5, "slo_p99_ms": 100, "settle_seconds": 1}
    with pytest.raises(ValueError):
        StepPlan(**{**base, **kwargs})


def test_ramp_rises_linearly_then_holds_then_stops():
    plan = RampPlan(max_users=100, ramp_seconds=10, time_limit_s=20)
    assert ramp_users(plan, 0)[0] == 1
    assert ramp_users(plan, 5)[0] == 50
    assert ramp_users(plan, 10)[0] == 100
    assert ramp_users(plan, 15)[0] == 100
    assert ramp_users(plan, 20) is None


def test_default_steps_fit_the_duration():
    users, seconds = default_steps(200, 60)
    assert (users, seconds) == (40, 12.0)
    users, seconds = default_steps(20, 15)
    assert seconds * (20 // users + (20 % users > 0)) <= 15
    assert default_steps(200, 60, step_seconds=10) == (34, 10)
