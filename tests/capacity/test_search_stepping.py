"""The capacity search's controller with fake stats and a fake load generator: climb, bisection, workers added, lower bound."""

from __future__ import annotations

from typing import Any

from labkit.capacity.limits import LimitSearch
from labkit.capacity.stepping import Generator, SearchController, StepPlan, StepStats


class FakeServer:
    """p99 is 10 ms up to ``limit`` users and 500 ms above; Locust's CPU grows with the users per worker."""

    def __init__(self, controller_users: Any, limit: int, per_worker: int, workers: list[int]) -> None:
        self.users = controller_users
        self.limit = limit
        self.per_worker = per_worker
        self.workers = workers

    def snapshot(self) -> int:
        return 0

    def since(self, _: Any) -> StepStats:
        users = self.users()
        saturated = users / self.workers[0] >= self.per_worker
        return StepStats(1000, 0, 10.0 if users <= self.limit and not saturated else 500.0)

    def cpu(self) -> float:
        return min(100.0, 100.0 * self.users() / (self.workers[0] * self.per_worker))


def run(limit: int, per_worker: int, max_workers: int, time_limit: float = 2000.0) -> tuple[SearchController, list[int]]:
    plan = StepPlan(max_users=20_000, step_users=100, step_seconds=10, slo_p99_ms=100, settle_seconds=2, time_limit_s=time_limit)
    workers = [1]
    holder: dict[str, SearchController] = {}
    server = FakeServer(lambda: holder["c"].users, limit, per_worker, workers)

    def add() -> None:
        workers[0] += 1

    c = SearchController(
        plan,
        server,
        LimitSearch(start=100, maximum=20_000, max_probes=1000),
        generator=lambda: Generator(server.cpu(), workers[0], workers[0] < max_workers),
        add_worker=add,
    )
    holder["c"] = c
    t = 0.0
    while c.tick(t) is not None and t < 10 * time_limit:
        t += 1.0
    return c, workers


def test_the_search_climbs_then_bisects_to_ten_percent() -> None:
    c, _ = run(limit=3000, per_worker=100_000, max_workers=1)
    out = c.search.outcome()
    assert [p.load for p in out.probes][:6] == [100, 200, 400, 800, 1600, 3200]
    assert out.limit is not None and out.upper is not None and out.limit <= 3000 < out.upper
    assert out.within_tolerance and not out.lower_bound and "limit search over" in (c.stop_reason or "")


def test_locust_out_of_cpu_adds_a_worker_and_repeats_the_step() -> None:
    c, workers = run(limit=3000, per_worker=1000, max_workers=4)
    out = c.search.outcome()
    assert workers[0] > 1 and c.workers_added == workers[0] - 1
    assert out.limit is not None and out.limit <= 3000 < out.upper  # type: ignore[operator]
    assert not out.lower_bound  # the breach that brackets it was the server's
    repeated = [o.users for o in c.outcomes]
    assert len(repeated) == len(out.probes) + c.workers_added  # each added worker re-ran one step


def test_with_no_worker_left_the_limit_is_a_lower_bound_naming_the_clients() -> None:
    c, workers = run(limit=3000, per_worker=500, max_workers=2)
    out = c.search.outcome()
    assert workers[0] == 2
    assert out.failed is not None and out.failed.clients_saturated
    assert out.lower_bound and out.limit is not None and out.limit < 1000


def test_the_time_limit_stops_the_search_with_its_bracket_so_far() -> None:
    c, _ = run(limit=3000, per_worker=100_000, max_workers=1, time_limit=45.0)
    assert c.stop_reason is not None and c.stop_reason.startswith("time limit")
    assert len(c.search.probes) == 4  # 4 steps of 10 s before 45 s


def test_a_step_that_saw_no_request_is_run_again_not_counted() -> None:
    plan = StepPlan(max_users=100, step_users=10, step_seconds=5, slo_p99_ms=100, settle_seconds=1, time_limit_s=500)
    seen = iter([StepStats(0, 0, None), StepStats(100, 0, 5.0)] + [StepStats(100, 0, 5.0)] * 50)

    class Probe:
        def snapshot(self) -> int:
            return 0

        def since(self, _: Any) -> StepStats:
            return next(seen)

    c = SearchController(
        plan, Probe(), LimitSearch(start=10, maximum=100), generator=lambda: Generator(10.0, 1, False), add_worker=lambda: None
    )
    t = 0.0
    while c.tick(t) is not None and t < 1000:
        t += 1.0
    assert c.outcomes[0].users == c.outcomes[1].users == 10  # the empty step ran again
    assert all(p.held for p in c.search.probes) and c.search.probes[0].load == 10


def test_the_repeated_step_waits_for_the_new_worker_to_join() -> None:
    plan = StepPlan(max_users=100, step_users=10, step_seconds=5, slo_p99_ms=100, settle_seconds=1, time_limit_s=200)
    joined: list[float] = []
    now = [0.0]

    class Probe:
        def snapshot(self) -> int:
            return 0

        def since(self, _: Any) -> StepStats:
            return StepStats(100, 0, 5.0)

    def generator() -> Generator:
        workers = 1 + sum(1 for t in joined if now[0] >= t)
        return Generator(95.0 if workers == 1 else 10.0, workers, workers < 2)

    c = SearchController(
        plan, Probe(), LimitSearch(start=10, maximum=20, max_probes=3), generator=generator, add_worker=lambda: joined.append(now[0] + 8)
    )
    while c.tick(now[0]) is not None and now[0] < 500:
        now[0] += 1.0
    first, again = c.outcomes[0], c.outcomes[1]
    assert first.users == again.users == 10 and c.workers_added == 1
    assert again.started_s >= first.ended_s + 8  # the step ran again only once the worker had joined
