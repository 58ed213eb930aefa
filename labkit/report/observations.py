"""The measured runs as the decision sees them: observations, citations, the crossover.

An ``Obs`` is one (run, style) row of ``load_results`` with the quantities a
decision reasons about (rate, poll interval, lambda T, variant); ``Obs.ev``
turns a column into an ``Evidence``: run id, style, column and value, the
citation every reason in a report carries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from labkit import styles
from labkit.report.policy import round_sig as round_sig
from labkit.report.terms import POLLING, WEBHOOK
from labkit.results import columns as cols


@dataclass(frozen=True)
class Evidence:
    """One measured number: where it comes from and what it is."""

    run_id: str
    style: str
    column: str
    value: Any

    def cite(self) -> str:
        return f"{self.run_id} / {self.style} / {self.column} = {fmt(self.value)}"


def fmt(value: Any) -> str:
    """A number as a reader wants it: three significant digits, no float noise."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value == 0:
            return "0"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def num(value: Any) -> float | None:
    if value is None or isinstance(value, (bool, dict, list, str)):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def logdist(a: float | None, b: float | None) -> float:
    if not a or not b or a <= 0 or b <= 0:
        return math.inf
    return abs(math.log(a / b))


@dataclass(frozen=True)
class Obs:
    """One (run, style) row, with the few quantities the decision reasons about."""

    run_id: str
    style: str
    variant: str
    rate: float | None
    interval_s: float | None
    lambda_t: float | None
    consumers: int | None
    arrival: str | None
    row: dict[str, Any]

    def get(self, column: str) -> float | None:
        return num(self.row.get(column))

    def ev(self, column: str) -> Evidence:
        value = self.row.get(column)
        if isinstance(value, float) and math.isnan(value):
            value = None
        return Evidence(self.run_id, self.style, column, value)

    def has(self, column: str) -> bool:
        return self.get(column) is not None


def _setting(row: dict[str, Any], name: str) -> Any:
    for col in (f"param.{name}", f"settings.{name}"):
        value = row.get(col)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return value
    return None


def is_stream(style: str) -> bool:
    """A held stream: the provider pushes over a connection the consumer opened (the registry says so, not the name)."""
    info = styles.get(style)
    return info is not None and info.family == "stream"


def variant_of(row: dict[str, Any]) -> str:
    """The delivery variant a row measured, from its settings or its model's stated assumptions."""
    style = str(row.get("style"))
    if styles.get(style) is None:
        return style
    return styles.unit(style).variant(lambda name: _setting(row, name), str(row.get(cols.MODEL_ASSUMES) or ""))


@dataclass(frozen=True)
class Observations(Sequence[Obs]):
    """Every (run, style) row of a report's results as ``Obs``, built once per report and handed to every part.

    A sequence in a stable order (run id, then style), with the selections the
    parts ask for: by variant, the held streams, the runs.
    """

    items: tuple[Obs, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Obs]:
        return iter(self.items)

    def __getitem__(self, i: Any) -> Any:
        return self.items[i]

    def of(self, *variants: str) -> list[Obs]:
        """The observations of these variants (the report's option names)."""
        return [o for o in self.items if o.variant in variants]

    def streams(self) -> list[Obs]:
        """The observations of held-stream styles (the registry says which)."""
        return [o for o in self.items if is_stream(o.style)]

    def run(self, run_id: str) -> list[Obs]:
        return [o for o in self.items if o.run_id == run_id]

    @property
    def variants(self) -> list[str]:
        """Every measured variant, in first-seen order."""
        return list(dict.fromkeys(o.variant for o in self.items))


def _obs(row: dict[str, Any]) -> Obs:
    # the rate each consumer receives: the publish rate for a broadcast, its audience share otherwise
    per_consumer = num(row.get(cols.RATE_PER_CONSUMER))
    rate = per_consumer or num(row.get(cols.RATE))
    interval = num(row.get(cols.POLL_INTERVAL_S)) or num(_setting(row, cols.POLL_INTERVAL_S))
    lt = (
        (per_consumer * interval if per_consumer and interval else None) or num(row.get(cols.LAMBDA_T)) or num(row.get(cols.MODEL_LAMBDA_T))
    )
    if lt is None and rate and interval:
        lt = rate * interval
    if interval is None and lt and rate:
        interval = lt / rate
    consumers = num(row.get(cols.CONSUMERS))
    return Obs(
        run_id=str(row.get("run_id")),
        style=str(row.get("style")),
        variant=variant_of(row),
        rate=rate,
        interval_s=interval,
        lambda_t=lt,
        consumers=int(consumers) if consumers else None,
        arrival=row.get(cols.ARRIVAL),
        row=row,
    )


def observations(results: pd.DataFrame | Observations | None) -> Observations:
    """The results table as observations, in a stable order (given ``Observations``, the same object)."""
    if isinstance(results, Observations):
        return results
    if results is None or len(results) == 0 or "style" not in results.columns:
        return Observations()
    return Observations(tuple(sorted((_obs(row) for row in results.to_dict("records")), key=lambda o: (o.run_id, o.style))))


def nearest(obs: Sequence[Obs], key: Callable[[Obs], float]) -> Obs | None:
    if not obs:
        return None
    return min(obs, key=lambda o: (key(o), o.run_id))


def measured_crossover(obs: Sequence[Obs]) -> tuple[float | None, list[tuple[Obs, Obs]]]:
    """lambda T where measured polling requests per event fall to push's, from runs that measured both.

    Interpolated on log-log axes between the last point where polling costs more
    and the first where it costs less; ``None`` when the runs do not bracket it.
    """
    by_run: dict[str, dict[str, Obs]] = {}
    for o in obs:
        if o.variant in (POLLING, WEBHOOK) and o.has("requests_per_event"):
            by_run.setdefault(o.run_id, {})[o.variant] = o
    pairs = sorted(
        ((d[POLLING], d[WEBHOOK]) for d in by_run.values() if POLLING in d and WEBHOOK in d and d[POLLING].lambda_t),
        key=lambda p: p[0].lambda_t or 0,
    )
    for (pa, wa), (pb, wb) in zip(pairs, pairs[1:], strict=False):
        da = math.log(pa.get("requests_per_event") / wa.get("requests_per_event"))  # type: ignore[operator]
        db = math.log(pb.get("requests_per_event") / wb.get("requests_per_event"))  # type: ignore[operator]
        if da >= 0 >= db and da != db:
            la, lb = math.log(pa.lambda_t), math.log(pb.lambda_t)  # type: ignore[arg-type]
            return math.exp(la + (lb - la) * da / (da - db)), pairs
    return None, pairs
