"""The limit search with a fake prober: climb, bisection, bracketing, budgets, lower-bound labels, ratio ranges."""

from __future__ import annotations

import pytest

from labkit.capacity.limits import LimitSearch, Probe, ratio_range, run_search


def prober(limit: int, clients_from: int | None = None, seconds: float = 1.0):  # type: ignore[no-untyped-def]
    """A system that holds up to ``limit``; its clients run out of CPU from ``clients_from`` on."""
    seen: list[int] = []

    def probe(load: int) -> Probe:
        seen.append(load)
        saturated = clients_from is not None and load >= clients_from
        return Probe(load, held=load <= limit, clients_saturated=saturated, seconds=seconds)

    probe.seen = seen  # type: ignore[attr-defined]
    return probe


@pytest.mark.parametrize("limit", [1, 7, 450, 1000, 2999, 3000, 5123, 9999])
def test_the_bracket_holds_the_true_limit_within_ten_percent(limit: int) -> None:
    out = run_search(LimitSearch(start=1000, maximum=10_000, max_probes=30), prober(limit))
    assert out.limit == limit or (out.limit is not None and out.limit <= limit < out.upper)  # type: ignore[operator]
    assert out.upper is not None and out.upper > limit
    assert out.upper - out.limit <= max(1, 0.10 * out.limit)
    assert out.within_tolerance and not out.lower_bound
    assert out.limited_by == "system"
    assert out.held is not None and out.held.held and out.failed is not None and not out.failed.held


def test_climbs_by_the_factor_then_bisects() -> None:
    probe = prober(5000)
    run_search(LimitSearch(start=1000, maximum=10_000, factor=2.0), probe)
    assert probe.seen[:4] == [1000, 2000, 4000, 8000]  # type: ignore[attr-defined]
    assert probe.seen[4] == 6000  # type: ignore[attr-defined]  # the midpoint of 4000 held / 8000 failed
    assert all(4000 < n < 8000 for n in probe.seen[4:])  # type: ignore[attr-defined]


def test_descends_when_the_start_fails() -> None:
    probe = prober(300)
    out = run_search(LimitSearch(start=1000, maximum=10_000), probe)
    assert probe.seen[:3] == [1000, 500, 250]  # type: ignore[attr-defined]
    assert out.limit is not None and out.limit <= 300 < out.upper  # type: ignore[operator]


def test_nothing_held_down_to_the_minimum() -> None:
    out = run_search(LimitSearch(start=8, maximum=100, minimum=2), prober(1))
    assert out.limit is None and out.limited_by == "nothing held" and not out.lower_bound
    assert out.label().startswith("none")


def test_held_at_the_maximum_is_a_lower_bound() -> None:
    out = run_search(LimitSearch(start=1000, maximum=10_000), prober(50_000))
    assert out.limit == 10_000 and out.upper is None
    assert out.lower_bound and out.limited_by == "maximum"
    assert out.label().startswith(">= 10000")


def test_a_failure_with_the_clients_out_of_cpu_makes_a_lower_bound() -> None:
    out = run_search(LimitSearch(start=1000, maximum=10_000, max_probes=30), prober(5000, clients_from=4500))
    assert out.failed is not None and out.failed.clients_saturated
    assert out.lower_bound and out.limited_by == "clients' CPU"
    assert "lower bound" in out.label()


def test_only_the_failing_runs_clients_decide_the_label() -> None:
    # clients out of CPU only far above the limit: the failure that brackets it is the system's own
    out = run_search(LimitSearch(start=1000, maximum=10_000, max_probes=30), prober(5000, clients_from=8000))
    assert any(p.clients_saturated for p in out.probes)  # the 8000 probe
    assert not out.lower_bound and out.limited_by == "system"


def test_a_failure_that_names_its_cause_sets_the_limit_by_it_even_with_busy_clients() -> None:
    cause = "the provider's open-files limit (20000 per process)"

    def probe(load: int) -> Probe:  # above 19,900 the provider takes no more connections, and the clients are busy too
        return Probe(load, held=load <= 19_900, clients_saturated=load > 19_900, cause=cause if load > 19_900 else None)

    out = run_search(LimitSearch(start=16_000, maximum=80_000, max_probes=30), probe)
    assert out.limit is not None and out.limit <= 19_900 < out.upper  # type: ignore[operator]
    assert out.within_tolerance and not out.lower_bound and out.limited_by == cause
    assert out.label() == f"{out.limit} (held; {out.upper} failed; set by {cause})"
    assert out.to_json()["failed"]["cause"] == cause and "cause" not in out.to_json()["held"]


def test_the_probe_budget_stops_the_search_with_its_bracket() -> None:
    probe = prober(5000)
    out = run_search(LimitSearch(start=1000, maximum=10_000, max_probes=5), probe)
    assert len(probe.seen) == 5  # type: ignore[attr-defined]
    assert out.limited_by == "probe budget" and not out.within_tolerance
    assert out.limit is not None and out.limit <= 5000 < out.upper  # type: ignore[operator]


def test_the_time_budget_stops_before_a_probe_that_would_overrun() -> None:
    now = [0.0]

    def probe(load: int) -> Probe:
        now[0] += 100.0
        return Probe(load, held=load <= 5000, seconds=100.0)

    out = run_search(LimitSearch(start=1000, maximum=10_000, deadline_s=350.0, clock=lambda: now[0]), probe)
    assert len(out.probes) == 3  # at 300 s a fourth (100 s) would end at 400 > 350
    assert out.limited_by == "time budget" and out.lower_bound  # nothing failed yet


def test_a_noisy_held_run_above_a_failure_is_not_the_limit() -> None:
    search = LimitSearch(start=1000, maximum=10_000)
    for load, held in ((1000, True), (2000, False), (1500, True), (2500, True)):
        search.record(Probe(load, held))
    assert search.held is not None and search.held.load == 1500
    assert search.failed is not None and search.failed.load == 2000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": 0, "maximum": 10},
        {"start": 11, "maximum": 10},
        {"start": 5, "maximum": 10, "factor": 1.0},
        {"start": 5, "maximum": 10, "tolerance": 0.0},
        {"start": 5, "maximum": 10, "max_probes": 0},
        {"start": 5, "maximum": 10, "deadline_s": 3.0},
    ],
)
def test_bad_plans_are_refused(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        LimitSearch(**kwargs)


def test_ratio_range_from_two_brackets() -> None:
    streams = run_search(LimitSearch(start=1000, maximum=100_000, max_probes=40), prober(20_000))
    polls = run_search(LimitSearch(start=1000, maximum=100_000, max_probes=40), prober(4_000))
    low, high = ratio_range(streams, polls)
    assert low is not None and high is not None
    assert low <= 20_000 / 4_000 <= high
    assert low == streams.limit / polls.upper  # type: ignore[operator]
    assert high == streams.upper / polls.limit  # type: ignore[operator]


def test_ratio_range_leaves_the_end_a_lower_bound_cannot_support_open() -> None:
    capped = run_search(LimitSearch(start=1000, maximum=10_000), prober(50_000))  # held at the maximum
    polls = run_search(LimitSearch(start=1000, maximum=10_000, max_probes=30), prober(4_000))
    low, high = ratio_range(capped, polls)
    assert low == 10_000 / polls.upper and high is None  # type: ignore[operator]
    assert ratio_range(polls, capped) == (None, polls.upper / 10_000)  # type: ignore[operator]
