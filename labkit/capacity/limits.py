"""A limit found, not stepped: climb coarsely until a probe fails, then bisect to a tolerance.

A *probe* runs the system at one load (consumers, users) and says whether it
held (its SLO met, nothing lost) and whether the *clients* (the consumer fleet,
the load generator) ran out of CPU while it ran. The search:

1. probes ``start``; while probes hold it climbs by ``factor`` (up to
   ``maximum``), and while they fail it descends by ``factor`` (down to
   ``minimum``), until it has a load that held and a higher one that failed;
2. bisects between the highest load that held (``lo``) and the lowest that
   failed (``hi``) until ``hi - lo <= tolerance * lo`` (or they are adjacent).

The answer is always the bracket with the two runs that make it, never a bare
number. A failing run may name its *cause* (a provider out of open files):
the limit is then labelled as set by that. It is a *lower bound*, and
labelled so, when the failing run's clients ran out of CPU (the failure may
be theirs, not the system's), when nothing failed up to ``maximum``, or when
the budget (``max_probes``, ``deadline_s``) ended the search before anything
failed.

The class is pure (no processes, no clock of its own): ``next_load`` says what
to probe, ``record`` takes the outcome, and a driver (``labkit.runs.served``,
the capacity step shape) runs the probes. Every search is bounded in probes
and, given a clock, in time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOLERANCE = 0.10
DEFAULT_FACTOR = 2.0


@dataclass(frozen=True)
class Probe:
    """One run at one load and what it showed."""

    load: int
    held: bool
    clients_saturated: bool = False  # the clients (fleet, load generator) ran out of CPU in this run
    seconds: float = 0.0  # how long the probe took (the time budget's estimate of the next one)
    detail: Mapping[str, Any] = field(default_factory=dict)
    # What made it fail when the run knows, beyond its SLO (e.g. "the provider's open-files limit (20000 per process)")
    cause: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "load": self.load,
            "held": self.held,
            "clients_saturated": self.clients_saturated,
            "seconds": round(self.seconds, 3),
            **({"cause": self.cause} if self.cause else {}),
            **dict(self.detail),
        }


@dataclass(frozen=True)
class LimitOutcome:
    """The bracket a search ended with, its two runs, and how far it can be trusted."""

    limit: int | None  # the highest load that held; None: nothing held
    held: Probe | None  # the run at ``limit``
    failed: Probe | None  # the lowest load that failed above it; None: nothing failed
    within_tolerance: bool
    lower_bound: bool
    # "system", "clients' CPU", "maximum", "probe budget", "time budget", "nothing held", or the failed run's ``cause``
    limited_by: str
    stop_reason: str
    tolerance: float
    probes: tuple[Probe, ...]

    @property
    def upper(self) -> int | None:
        """The lowest load that failed (the limit is below it); None when nothing failed."""
        return self.failed.load if self.failed is not None else None

    def label(self) -> str:
        """The limit as a reader should quote it."""
        if self.limit is None:
            return f"none: {self.stop_reason}"
        if self.upper is None:
            return f">= {self.limit} (lower bound: {self.limited_by})"
        text = f"{self.limit} (held; {self.upper} failed)"
        if self.failed is not None and self.failed.cause and self.limited_by == self.failed.cause:
            text = f"{self.limit} (held; {self.upper} failed; set by {self.failed.cause})"
        return f">= {self.limit} (lower bound: {self.limited_by}; {self.upper} failed)" if self.lower_bound else text

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "upper": self.upper,
            "within_tolerance": self.within_tolerance,
            "lower_bound": self.lower_bound,
            "limited_by": self.limited_by,
            "stop_reason": self.stop_reason,
            "tolerance": self.tolerance,
            "label": self.label(),
            "held": self.held.to_json() if self.held is not None else None,
            "failed": self.failed.to_json() if self.failed is not None else None,
            "probes": [p.to_json() for p in self.probes],
        }


@dataclass
class LimitSearch:
    """Drives one search: ``next_load()`` -> run a probe -> ``record(probe)``, until ``next_load()`` is None."""

    start: int
    maximum: int
    minimum: int = 1
    factor: float = DEFAULT_FACTOR
    tolerance: float = DEFAULT_TOLERANCE
    max_probes: int = 12
    deadline_s: float | None = None  # on ``clock``'s axis: no probe starts that would end after it
    clock: Callable[[], float] | None = None
    probes: list[Probe] = field(default_factory=list)
    stop_reason: str | None = None
    limited_by: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError("minimum must be at least 1 and at most the maximum")
        if not self.minimum <= self.start <= self.maximum:
            raise ValueError("start must lie between minimum and maximum")
        if not self.factor > 1:
            raise ValueError("factor must be > 1")
        if not 0 < self.tolerance < 1:
            raise ValueError("tolerance must be between 0 and 1")
        if self.max_probes < 1:
            raise ValueError("max_probes must be at least 1")
        if self.deadline_s is not None and self.clock is None:
            raise ValueError("a deadline needs a clock")

    # -- the bracket ----------------------------------------------------------------------------

    @property
    def failed(self) -> Probe | None:
        """The lowest load that failed."""
        return min((p for p in self.probes if not p.held), key=lambda p: p.load, default=None)

    @property
    def held(self) -> Probe | None:
        """The highest load that held below the lowest failure (a held run above a failed one is noise, not the limit)."""
        hi = self.failed
        ok = [p for p in self.probes if p.held and (hi is None or p.load < hi.load)]
        return max(ok, key=lambda p: p.load, default=None)

    def bracketed(self) -> bool:
        """True when the held and the failed loads are within the tolerance (or adjacent)."""
        lo, hi = self.held, self.failed
        return lo is not None and hi is not None and hi.load - lo.load <= max(1.0, self.tolerance * lo.load)

    # -- the search -----------------------------------------------------------------------------

    def next_load(self) -> int | None:
        """The load to probe next, or None when the search is over (``stop_reason`` says why)."""
        if self.stop_reason is not None:
            return None
        load = self._candidate()
        if load is None:
            return None
        if len(self.probes) >= self.max_probes:
            self._stop(f"the budget of {self.max_probes} probes was spent", "probe budget")
            return None
        if self.deadline_s is not None and self.clock is not None:
            estimate = max((p.seconds for p in self.probes), default=0.0)
            if self.clock() + estimate > self.deadline_s:
                self._stop("the time budget would end before another probe", "time budget")
                return None
        return load

    def _candidate(self) -> int | None:
        lo, hi = self.held, self.failed
        if lo is None and hi is None:
            return self.start
        if hi is None:
            assert lo is not None
            if lo.load >= self.maximum:
                self._stop(f"held at the maximum of {self.maximum}", "maximum")
                return None
            return min(self.maximum, max(lo.load + 1, math.ceil(lo.load * self.factor)))
        if lo is None:
            if hi.load <= self.minimum:
                self._stop(f"failed at the minimum of {self.minimum}", "nothing held")
                return None
            return max(self.minimum, min(hi.load - 1, math.floor(hi.load / self.factor)))
        if self.bracketed():
            self._stop(f"bracketed within {self.tolerance:.0%}: {lo.load} held, {hi.load} failed", "system")
            return None
        return (lo.load + hi.load) // 2

    def _stop(self, reason: str, limited_by: str) -> None:
        self.stop_reason = reason
        self.limited_by = limited_by
        return None

    def record(self, probe: Probe) -> None:
        self.probes.append(probe)

    def outcome(self) -> LimitOutcome:
        """The bracket as it stands, labelled; call after ``next_load`` returned None (or at any time)."""
        lo, hi = self.held, self.failed
        limited_by = self.limited_by or "search not finished"
        cause = hi.cause if hi is not None else None
        # a failed run that names its cause (a named limit of the system) is not the clients' failure
        clients = hi is not None and hi.clients_saturated and not cause
        if limited_by == "system":
            limited_by = cause or ("clients' CPU" if clients else "system")
        lower_bound = lo is not None and (hi is None or clients)
        return LimitOutcome(
            limit=lo.load if lo is not None else None,
            held=lo,
            failed=hi,
            within_tolerance=self.bracketed(),
            lower_bound=lower_bound,
            limited_by=limited_by,
            stop_reason=self.stop_reason or "search not finished",
            tolerance=self.tolerance,
            probes=tuple(self.probes),
        )


def run_search(search: LimitSearch, probe: Callable[[int], Probe], log: Callable[[str], None] | None = None) -> LimitOutcome:
    """Run ``probe`` at each load the search asks for, until it is done; bounded by the search's own budget."""
    while (load := search.next_load()) is not None:
        result = probe(load)
        search.record(result)
        if log is not None:
            log(f"{load}: {'held' if result.held else 'failed'}{' (clients out of CPU)' if result.clients_saturated else ''}")
    return search.outcome()


def ratio_range(num: LimitOutcome, den: LimitOutcome) -> tuple[float | None, float | None]:
    """The range of ``num``'s limit over ``den``'s that both brackets support: (low, high), None for an open end.

    A limit lies in [held, failed): the ratio is at least held_num / failed_den and below
    failed_num / held_den. A lower bound (no failed run, or a failure the clients' CPU may
    explain) gives no upper end to its own limit: ``num``'s then leaves the ratio's high end
    open, ``den``'s its low end.
    """
    if num.limit is None or den.limit is None:
        return None, None
    low = num.limit / den.upper if den.upper is not None and not den.lower_bound else None
    high = num.upper / den.limit if num.upper is not None and not num.lower_bound else None
    return low, high
