"""The fan-out's queue every push style's model shares: one event to F receivers, one after another."""

from __future__ import annotations

import pytest

from labkit.model import fanout, streams


def test_the_kth_receiver_waits_k_spacings() -> None:
    assert fanout.fanout_queueing_s(1, 0.0003) == 0 and fanout.fanout_queueing_s(1, 0.0003, 0.99) == 0
    assert fanout.fanout_queueing_s(2000, 0.0003) == pytest.approx(1999 * 0.0003 / 2)
    assert fanout.fanout_queueing_s(2000, 0.0003, 0.99) == pytest.approx(0.99 * 1999 * 0.0003)
    assert fanout.fanout_queueing_s(200.5, 0.001) == pytest.approx(0.09975)  # a topic's mean subscribers may be fractional
    with pytest.raises(ValueError):
        fanout.fanout_queueing_s(0.5, 0.001)
    with pytest.raises(ValueError):
        fanout.fanout_queueing_s(10, 0.001, 1.5)
    assert streams.fanout_queueing_s is fanout.fanout_queueing_s  # one form, not a copy per style


def test_the_concurrency_bound_wins_across_a_long_round_trip() -> None:
    # loopback: a delivery holds its slot ~1 ms, 64 in flight: the dispatcher's own spacing (0.3 ms) paces them
    assert fanout.dispatch_spacing_s(0.0003, 0.001, 64) == 0.0003
    # 65 ms away, 64 in flight: one start per 66 ms / 64 ~ 1 ms, so 2,000 merchants take ~2 s to reach
    spacing = fanout.dispatch_spacing_s(0.0003, 0.066, 64)
    assert spacing == pytest.approx(0.066 / 64)
    assert fanout.fanout_queueing_s(2000, spacing, 1.0) == pytest.approx(2.06, abs=0.01)
    with pytest.raises(ValueError):
        fanout.dispatch_spacing_s(0.0003, 0.066, 0)


def test_the_spacing_is_the_median_spread_of_complete_events() -> None:
    # three events to 5 receivers, 1 ms, 2 ms and 10 ms apart; a fourth reached only 2 receivers (left out)
    records = [
        (e, start + k * gap) for e, start, gap in ((1, 0, 1_000_000), (2, 10**9, 2_000_000), (3, 2 * 10**9, 10_000_000)) for k in range(5)
    ]
    records += [(4, 3 * 10**9), (4, 3 * 10**9 + 50_000_000)]
    assert fanout.spacing_from_records(records, 5) == pytest.approx(0.002)
    assert fanout.spacing_from_records(records[:10], 5) == pytest.approx(0.0015)  # an even count: the mean of the middle two
    assert fanout.spacing_from_records(records, 1) is None  # one receiver: no spacing to see
    assert fanout.spacing_from_records(records[-2:], 5) is None  # no event reached them all
