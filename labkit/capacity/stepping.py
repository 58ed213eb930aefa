"""The logic of the load shapes, free of Locust so it can be tested with fake stats.

A step test adds ``step_users`` users at a time and holds each step for
``step_seconds``. After ``settle_seconds`` of a step (spawning done, queues
warm) it marks the stats; at the end of the step it judges what happened since
the mark against the SLO (p99 latency and failure ratio). The first step that
breaches the SLO, reaching ``max_users`` or the time limit ends the test::

    users
      ^            +------+ breach -> stop
      |     +------+  ok  |
      +-----+  ok  |      |
      |  ok |      |      |
      +-----+------+------+----> time
        [settle | judged part]

``StepController.tick`` returns ``(users, spawn_rate)`` or ``None`` (stop),
exactly what ``LoadTestShape.tick`` returns; ``labkit.capacity.shapes`` wraps
it for Locust. A ramp (``ramp_users``) rises linearly to the maximum and holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from labkit.capacity.limits import LimitSearch, Probe

# A load generator process at this % of one core ran out of CPU (Locust warns at the same 90 %).
GENERATOR_SATURATED_PERCENT = 90.0
SEARCH_SPAWN_S = 2.0
WORKER_JOIN_S = 30.0  # a worker that has not joined by then is not waited for
EMPTY_STEP_RERUNS = 2  # a step that saw no request is run again this often before it counts as a breach


@dataclass(frozen=True)
class StepStats:
    """What happened in the judged part of a step."""

    requests: int
    failures: int
    p99_ms: float | None  # None: no samples of the SLO metric

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class StatsProbe(Protocol):
    """Reads running stats: ``snapshot`` now, ``since(snapshot)`` the difference."""

    def snapshot(self) -> Any: ...

    def since(self, snapshot: Any) -> StepStats: ...


@dataclass(frozen=True)
class StepPlan:
    """How a step test grows and when it stops."""

    max_users: int
    step_users: int
    step_seconds: float
    slo_p99_ms: float
    max_failure_ratio: float = 0.01
    settle_seconds: float = 2.0
    spawn_rate: float | None = None  # None: the whole step within about one second
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_users < 1:
            raise ValueError("max_users must be at least 1")
        if self.step_users < 1:
            raise ValueError("step_users must be at least 1")
        if not self.step_seconds > 0:
            raise ValueError("step_seconds must be > 0")
        if not 0 <= self.settle_seconds < self.step_seconds:
            raise ValueError("settle_seconds must be >= 0 and shorter than a step")
        if not self.slo_p99_ms > 0:
            raise ValueError("slo_p99_ms must be > 0")
        if not 0 <= self.max_failure_ratio <= 1:
            raise ValueError("max_failure_ratio must be between 0 and 1")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError("time_limit_s must be > 0")

    @property
    def rate(self) -> float:
        return float(self.spawn_rate or self.step_users)

    def users_at(self, index: int) -> int:
        """Users of step ``index`` (0-based)."""
        return min(self.max_users, (index + 1) * self.step_users)

    @property
    def steps(self) -> int:
        return math.ceil(self.max_users / self.step_users)


@dataclass(frozen=True)
class StepOutcome:
    """One judged step."""

    index: int
    users: int
    started_s: float
    ended_s: float
    stats: StepStats
    met: bool
    reason: str


@dataclass
class StepController:
    """Drives a step test: call ``tick(run_time_s)`` about once a second."""

    plan: StepPlan
    probe: StatsProbe
    outcomes: list[StepOutcome] = field(default_factory=list)
    stop_reason: str | None = None
    _index: int = 0
    _started: float | None = None
    _mark: Any = None

    @property
    def users(self) -> int:
        return self.plan.users_at(self._index)

    def tick(self, run_time_s: float) -> tuple[int, float] | None:
        plan = self.plan
        if self.stop_reason is not None:
            return None
        if plan.time_limit_s is not None and run_time_s >= plan.time_limit_s:
            self.stop_reason = f"time limit of {plan.time_limit_s:g} s reached at {self.users} users"
            return None
        if self._started is None:
            self._started = run_time_s
        elapsed = run_time_s - self._started
        if self._mark is None and elapsed >= plan.settle_seconds:
            self._mark = self.probe.snapshot()
        if elapsed >= plan.step_seconds:
            outcome = self._judge(run_time_s)
            self.outcomes.append(outcome)
            if not outcome.met:
                self.stop_reason = f"SLO breached at {outcome.users} users: {outcome.reason}"
                return None
            if outcome.users >= plan.max_users:
                self.stop_reason = f"max users ({plan.max_users}) reached within the SLO"
                return None
            self._index += 1
            self._started = run_time_s
            self._mark = None
            if plan.settle_seconds == 0:
                self._mark = self.probe.snapshot()
        return self.users, plan.rate

    def _judge(self, now_s: float) -> StepOutcome:
        plan = self.plan
        stats = self.probe.since(self._mark) if self._mark is not None else StepStats(0, 0, None)
        met, reason = judge(stats, plan.slo_p99_ms, plan.max_failure_ratio)
        assert self._started is not None
        return StepOutcome(self._index, self.users, self._started, now_s, stats, met, reason)


@dataclass(frozen=True)
class Generator:
    """The load generator as the shape sees it: its busiest process's CPU (% of one core) and whether it can grow."""

    cpu_percent: float | None
    workers: int
    can_add: bool


@dataclass
class SearchController:
    """Finds the limit instead of stepping to ``max_users``: each step is a probe of a ``LimitSearch``.

    A step holds the search's next user count for ``step_seconds`` and is
    judged on its steady part, as a plain step test's. When the load generator
    ran out of CPU in a step (its busiest process at ``GENERATOR_SATURATED_PERCENT``
    of a core or more) and it may still grow, a worker is added (``add_worker``)
    and the step is run again at the same count, so a breach is the server's,
    not Locust's; only when no worker can be added does a probe count with its
    clients saturated (and the limit becomes a lower bound).
    """

    plan: StepPlan
    probe: StatsProbe
    search: LimitSearch
    generator: Callable[[], Generator]
    add_worker: Callable[[], None]
    outcomes: list[StepOutcome] = field(default_factory=list)
    stop_reason: str | None = None
    workers_added: int = 0
    _users: int | None = None
    _index: int = 0
    _started: float | None = None
    _mark: Any = None
    _cpu_max: float | None = None
    _rate: float = 1.0
    _last: int = 0
    _empty: int = 0
    _awaiting: tuple[int, float] | None = None  # (workers wanted, since): the step restarts once they joined

    @property
    def users(self) -> int:
        return self._users or 0

    def tick(self, run_time_s: float) -> tuple[int, float] | None:
        if self.stop_reason is not None:
            return None
        if self.plan.time_limit_s is not None and run_time_s >= self.plan.time_limit_s:
            self.stop_reason = f"time limit of {self.plan.time_limit_s:g} s reached at {self.users} users"
            return None
        if self._users is None and not self._begin(run_time_s):
            return None
        if self._awaiting is not None:
            wanted, since = self._awaiting
            if self.generator().workers < wanted and run_time_s - since < WORKER_JOIN_S:
                return self.users, self._rate
            self._awaiting = None
            self._started = run_time_s  # the step starts again now, the new worker among the others
        assert self._started is not None
        elapsed = run_time_s - self._started
        if self._mark is None and elapsed >= self.plan.settle_seconds:
            self._mark = self.probe.snapshot()
        if self._mark is not None:
            cpu = self.generator().cpu_percent
            if cpu is not None:
                self._cpu_max = max(cpu, self._cpu_max or 0.0)
        if elapsed >= self.plan.step_seconds:
            self._end(run_time_s)
            if self._users is None and not self._begin(run_time_s):
                return None
        return self.users, self._rate

    def _begin(self, run_time_s: float) -> bool:
        load = self.search.next_load()
        if load is None:
            self.stop_reason = f"limit search over: {self.search.stop_reason}"
            return False
        # A search's steps differ by thousands of users: each change is spawned (or stopped) within about SPAWN_S.
        self._rate = max(self.plan.rate, abs(load - self._last) / SEARCH_SPAWN_S)
        self._users, self._last, self._started, self._mark, self._cpu_max = load, load, run_time_s, None, None
        return True

    def _end(self, run_time_s: float) -> None:
        stats = self.probe.since(self._mark) if self._mark is not None else StepStats(0, 0, None)
        met, reason = judge(stats, self.plan.slo_p99_ms, self.plan.max_failure_ratio)
        saturated = self._cpu_max is not None and self._cpu_max >= GENERATOR_SATURATED_PERCENT
        assert self._started is not None
        self.outcomes.append(StepOutcome(self._index, self.users, self._started, run_time_s, stats, met, reason))
        self._index += 1
        if stats.requests == 0 and self._empty < EMPTY_STEP_RERUNS:
            # nothing reached the stats yet (a master hears its workers every few seconds): not measured, not a breach
            self._empty += 1
            self._started, self._mark, self._cpu_max = run_time_s, None, None
            return
        self._empty = 0
        generator = self.generator()
        if saturated and generator.can_add:
            self.add_worker()
            self._awaiting = (generator.workers + 1, run_time_s)
            self.workers_added += 1
            self._started, self._mark, self._cpu_max = run_time_s, None, None  # the same count again, with one more worker
            return
        self.search.record(
            Probe(self.users, held=met, clients_saturated=saturated, seconds=run_time_s - self._started, detail={"why": reason})
        )
        self._users = None


def judge(stats: StepStats, slo_p99_ms: float, max_failure_ratio: float) -> tuple[bool, str]:
    """Whether a step met the SLO, and a short reason."""
    if stats.requests == 0 or stats.p99_ms is None:
        return False, "no requests completed"
    if stats.failure_ratio > max_failure_ratio:
        return False, f"failure ratio {stats.failure_ratio:.1%} > {max_failure_ratio:.1%}"
    if stats.p99_ms > slo_p99_ms:
        return False, f"p99 {stats.p99_ms:g} ms > {slo_p99_ms:g} ms"
    return True, f"p99 {stats.p99_ms:g} ms, failures {stats.failure_ratio:.1%}"


@dataclass(frozen=True)
class RampPlan:
    """A linear ramp from 0 to ``max_users`` over ``ramp_seconds``, held until the time limit."""

    max_users: int
    ramp_seconds: float
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_users < 1:
            raise ValueError("max_users must be at least 1")
        if not self.ramp_seconds > 0:
            raise ValueError("ramp_seconds must be > 0")


def ramp_users(plan: RampPlan, run_time_s: float) -> tuple[int, float] | None:
    """The ramp's ``(users, spawn_rate)`` at ``run_time_s``, or None once the time limit passed."""
    if plan.time_limit_s is not None and run_time_s >= plan.time_limit_s:
        return None
    users = min(plan.max_users, max(1, math.ceil(plan.max_users * run_time_s / plan.ramp_seconds)))
    return users, max(1.0, plan.max_users / plan.ramp_seconds)


def default_steps(max_users: int, duration_s: float, step_seconds: float | None = None) -> tuple[int, float]:
    """``(step_users, step_seconds)`` for a run: steps of about 12 s (Locust's p99 window is 10 s), at most 10."""
    if step_seconds is None:
        step_seconds = float(max(2, round(max(duration_s / 10, min(12.0, duration_s / 3)))))
    n_steps = max(1, math.floor(duration_s / step_seconds + 1e-9))
    return max(1, math.ceil(max_users / n_steps)), step_seconds


def default_settle(step_seconds: float) -> float:
    return min(2.0, step_seconds / 4)
