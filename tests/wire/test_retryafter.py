"""The one Retry-After parser: delta-seconds, HTTP-dates, and what it refuses or bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from labkit.wire.retryafter import MAX_RETRY_AFTER_S, parse_retry_after

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 0 ", 0.0), ("1.5", 1.5), ("120", 120.0), (b"3", 3.0), ("3600", 3600.0)],
)
def test_delta_seconds(value: str | bytes, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_negative_is_now() -> None:
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("-0.5") == 0.0


def test_huge_is_capped_at_one_documented_bound() -> None:
    assert MAX_RETRY_AFTER_S == 3600.0
    assert parse_retry_after("3601") == MAX_RETRY_AFTER_S
    assert parse_retry_after("99999999999") == MAX_RETRY_AFTER_S
    assert parse_retry_after("9" * 30) == MAX_RETRY_AFTER_S
    far = format_datetime(NOW + timedelta(days=400), usegmt=True)
    assert parse_retry_after(far, now_s=NOW.timestamp()) == MAX_RETRY_AFTER_S


def test_http_date_in_the_future_and_in_the_past() -> None:
    soon = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(soon, now_s=NOW.timestamp()) == pytest.approx(30.0)
    past = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now_s=NOW.timestamp()) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # against the real clock: long past


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "",
        "   ",
        "soon",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e3",
        "1_000",
        "0x10",
        "7 s",
        "Wed, 99 Foo 2015",
        "Wed, 21 Oct 99999 07:28:00 GMT",
    ],
)
def test_junk_is_ignored(junk: str | None) -> None:
    assert parse_retry_after(junk) is None
