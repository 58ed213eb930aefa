"""The audience's closed forms: per-consumer rates give the empty polls, requests and fan-out per event."""

import math

import pytest

from labkit.model.audience import audience_model, deciles, empty_poll_ratio, poll_requests_per_second, spread


def test_broadcast_is_the_old_model():
    m = audience_model([1.0] * 4, 2.0, pulled=True, interval_s=0.5)
    assert m["deliveries_per_event"] == 4
    assert m["empty_poll_ratio"] == pytest.approx(math.exp(-1.0))
    assert m["requests_per_event"] == pytest.approx(1 / (2.0 * 0.5))  # 1/(lambda T), as for every consumer alone


def test_per_consumer_empty_polls_are_the_mean_of_each_consumers():
    shares = [0.7, 0.2, 0.1]
    m = audience_model(shares, 10.0, pulled=True, interval_s=1.0)
    assert m["empty_poll_ratio"] == pytest.approx(sum(math.exp(-10 * s) for s in shares) / 3)
    assert m["deliveries_per_event"] == pytest.approx(1.0)
    assert m["requests_per_event"] == pytest.approx(3 / (1.0 * 10.0))  # N/T polls per second for lambda deliveries
    assert m["heaviest_decile"]["empty_poll_ratio"] == pytest.approx(math.exp(-7))
    assert m["lightest_decile"]["empty_poll_ratio"] == pytest.approx(math.exp(-1))


def test_push_fanout_is_the_receivers_per_event():
    assert audience_model([0.25] * 4, 1.0, pulled=False, interval_s=1.0)["fanout_per_event"] == pytest.approx(1.0)
    topics = audience_model([0.5, 0.5, 1.0], 1.0, pulled=False, interval_s=1.0)  # mean subscribers of an event's topic
    assert topics["fanout_per_event"] == pytest.approx(2.0)


def test_long_polls_and_helpers():
    assert poll_requests_per_second(2.0, 1.0) == 1.0
    assert poll_requests_per_second(2.0, 1.0, long_poll_wait_s=10) == pytest.approx(2.0 / (1 - math.exp(-20)))
    assert poll_requests_per_second(0.0, 1.0, long_poll_wait_s=10) == pytest.approx(0.1)
    assert empty_poll_ratio([1.0], 1.0, long_poll_wait_s=3) == pytest.approx(math.exp(-3))
    assert empty_poll_ratio([], 1.0) is None
    assert spread([3, 1, 2]) == {"min": 1, "median": 2, "max": 3}
    heavy, light = deciles([0.1] * 5 + [0.5] + [0.0] * 14)
    assert heavy == [5, 0] and light == [18, 19]
