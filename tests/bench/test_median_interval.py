"""The interval the bench reports around a median of per-round ratios: the sign test's order statistics."""

from __future__ import annotations

import math
import random

from labkit.bench.cases import median_interval


def test_twelve_rounds_give_the_third_smallest_and_the_third_largest() -> None:
    values = [1.0 + i / 100 for i in range(12)]
    random.Random(3).shuffle(values)
    assert median_interval(values) == [1.02, 1.09]  # P(Binomial(12, 1/2) <= 2) = 0.019 per side: 96 % coverage


def test_too_few_rounds_have_no_interval_and_non_numbers_are_left_out() -> None:
    assert median_interval([1.0, 1.1, 1.2, 1.3, 1.4]) is None  # five values: even min..max covers only 94 %
    assert median_interval([1.0, math.nan, 1.1, 1.2, 1.3, 1.4, 1.5]) == [1.0, 1.5]


def test_the_interval_covers_the_median_about_as_often_as_it_says() -> None:
    rng = random.Random(11)
    hits = 0
    for _ in range(2000):
        lo, hi = median_interval([rng.gauss(1.0, 0.05) for _ in range(12)]) or [math.nan, math.nan]
        hits += lo <= 1.0 <= hi
    assert 0.94 <= hits / 2000 <= 0.985
