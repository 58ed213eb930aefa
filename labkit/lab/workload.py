"""Seeded arrival processes: when each event is published, and what it carries.

The same ``WorkloadSettings`` always give the same arrival offsets and the
same payload bytes, so each delivery style sees an identical stream.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from labkit.config import RunSettings, WorkloadSettings, parse_skew
from labkit.errors import ConfigError

_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Workload:
    """Arrival offsets (seconds from the start) and a payload for each event."""

    settings: WorkloadSettings
    offsets_s: tuple[float, ...]
    payloads: tuple[dict[str, object], ...]

    def __len__(self) -> int:
        return len(self.offsets_s)

    @property
    def span_s(self) -> float:
        return self.offsets_s[-1] if self.offsets_s else 0.0


def constant_arrivals(rate: float, duration: float) -> list[float]:
    n = int(math.floor(rate * duration + 1e-9))
    return [k / rate for k in range(n)]


def poisson_arrivals(rate: float, duration: float, rng: random.Random) -> list[float]:
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def bursty_arrivals(rate: float, duration: float, on_s: float, off_s: float, rng: random.Random) -> list[float]:
    """On/off: Poisson bursts during 'on' windows, silence during 'off'; the mean rate stays ``rate``."""
    period = on_s + off_s
    rate_on = rate * period / on_s
    out: list[float] = []
    start = 0.0
    while start < duration:
        t = start + rng.expovariate(rate_on)
        end = min(start + on_s, duration)
        while t < end:
            out.append(t)
            t += rng.expovariate(rate_on)
        start += period
    return out


def trace_arrivals(path: str, duration: float) -> list[float]:
    """Timestamps (seconds) from a CSV: the first numeric column; shifted to start at 0."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"workload.trace_path: no such file {path}")
    times: list[float] = []
    with p.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            try:
                times.append(float(row[0]))
            except ValueError:
                if lineno == 1:
                    continue  # a header line
                raise ConfigError(f"{path}:{lineno}: not a timestamp: {row[0]!r}") from None
    if not times:
        raise ConfigError(f"{path}: holds no timestamps")
    times.sort()
    t0 = times[0]
    return [t - t0 for t in times if t - t0 < duration]


def make_payload(index: int, size: int, rng: random.Random) -> dict[str, object]:
    """A JSON object whose compact encoding is ``size`` bytes (for sizes >= 32)."""
    head = {"seq": index, "pad": ""}
    overhead = len(f'{{"seq":{index},"pad":""}}')
    head["pad"] = "".join(rng.choices(_ALPHABET, k=max(0, size - overhead)))
    return head


def build_workload(settings: WorkloadSettings) -> Workload:
    rng = random.Random(settings.seed)
    if settings.arrival == "constant":
        offsets = constant_arrivals(settings.rate_per_s, settings.duration_s)
    elif settings.arrival == "poisson":
        offsets = poisson_arrivals(settings.rate_per_s, settings.duration_s, rng)
    elif settings.arrival == "bursty":
        offsets = bursty_arrivals(settings.rate_per_s, settings.duration_s, settings.burst_on_s, settings.burst_off_s, rng)
    else:
        assert settings.trace_path is not None
        offsets = trace_arrivals(settings.trace_path, settings.duration_s)
    if len(offsets) > settings.max_events:
        raise ConfigError(f"workload: {len(offsets)} events exceed max_events={settings.max_events}; lower the rate or duration")
    payload_rng = random.Random(settings.seed + 1)
    payloads = tuple(make_payload(i, settings.payload_bytes, payload_rng) for i in range(len(offsets)))
    return Workload(settings=settings, offsets_s=tuple(offsets), payloads=payloads)


# -- the audience: who receives which event ------------------------------------------------

# Offsets the audience's random streams from the arrivals' and the payloads' (seed, seed + 1).
AUDIENCE_SEED_OFFSET = 2


def topic_name(k: int) -> str:
    """The event type of topic ``k`` (what a webhook subscription or a scoped key names)."""
    return f"t{k}"


def skew_weights(n: int, s: float) -> list[float]:
    """Shares of ranks 1..n proportional to 1/r^s, summing to 1 (s = 0: uniform)."""
    raw = [1.0 / (r**s) for r in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


@dataclass(frozen=True)
class AudiencePlan:
    """Which consumers each event of a workload goes to, for one style's consumers (seeded, so every style agrees).

    ``target`` holds, per workload event, the consumer index (per-consumer) or
    the topic index (topics); empty for a broadcast. ``follows`` holds each
    consumer's topics. Consumer i is ranked i + 1 for the skew (c0 the heaviest).
    """

    kind: str
    consumers: tuple[str, ...]
    target: tuple[int, ...] = ()
    follows: tuple[tuple[int, ...], ...] = ()
    topics: int = 0
    skew_s: float = 0.0

    @property
    def broadcast(self) -> bool:
        return self.kind == "broadcast"

    def event_type(self, index: int, default: str) -> str:
        """The type workload event ``index`` is published with: its topic, or the workload's type."""
        return topic_name(self.target[index]) if self.kind == "topics" else default

    def event_consumer(self, index: int) -> str | None:
        """The consumer workload event ``index`` belongs to (per-consumer), else None."""
        return self.consumers[self.target[index]] if self.kind == "per-consumer" else None

    def topics_of(self, index: int) -> tuple[str, ...]:
        """The event types consumer ``index`` follows (topics), else ()."""
        if self.kind != "topics":
            return ()
        return tuple(topic_name(k) for k in self.follows[index])

    def all_topics(self) -> list[tuple[str, ...]]:
        """Each consumer's topics, in consumer order; [] unless the audience is topics."""
        return [self.topics_of(i) for i in range(len(self.consumers))] if self.kind == "topics" else []

    def new_keys(self) -> list[str]:
        """A fresh random API key per consumer (a non-broadcast audience reads through scoped keys); [] for a broadcast."""
        return [] if self.broadcast else ["lk_" + secrets.token_urlsafe(12) for _ in self.consumers]

    def key_scopes(self, keys: list[str]) -> dict[str, dict[str, object]]:
        """The provider's ``key_scopes``: each consumer's key reads its own events (per-consumer) or its topics'."""
        if self.kind == "per-consumer":
            return {key: {"consumer": name} for key, name in zip(keys, self.consumers, strict=True)}
        return {key: {"types": list(topics)} for key, topics in zip(keys, self.all_topics(), strict=True)}

    def receivers(self, type_: str, consumer: str | None) -> list[str]:
        """Who should receive an event the provider logged with this type and consumer."""
        if self.kind == "per-consumer":
            return [consumer] if consumer in self._names else []
        if self.kind == "topics":
            return list(self._subscribers.get(type_, ()))
        return list(self.consumers)

    @property
    def _names(self) -> frozenset[str]:
        return frozenset(self.consumers)

    @property
    def _subscribers(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for name, ks in zip(self.consumers, self.follows, strict=True):
            for k in ks:
                out.setdefault(topic_name(k), []).append(name)
        return {t: tuple(v) for t, v in out.items()}

    def expected(self, logged: dict[int, tuple[str, str | None]]) -> dict[str, set[int]]:
        """Consumer -> the event ids it should receive, from the provider's log (id -> (type, consumer))."""
        out: dict[str, set[int]] = {c: set() for c in self.consumers}
        subscribers = self._subscribers if self.kind == "topics" else {}
        names = self._names
        for event_id, (type_, consumer) in logged.items():
            if self.kind == "per-consumer":
                if consumer in names:
                    out[consumer].add(event_id)  # type: ignore[index]
            elif self.kind == "topics":
                for c in subscribers.get(type_, ()):
                    out[c].add(event_id)
            else:
                for c in self.consumers:
                    out[c].add(event_id)
        return out

    def rates(self, rate_per_s: float) -> list[float]:
        """Each consumer's expected event rate (lambda_i) at a total publish rate: what the model takes."""
        n = len(self.consumers)
        if self.kind == "per-consumer":
            return [rate_per_s * w for w in skew_weights(n, self.skew_s)]
        if self.kind == "topics":
            share = skew_weights(self.topics, self.skew_s)
            return [rate_per_s * sum(share[k] for k in ks) for ks in self.follows]
        return [rate_per_s] * n

    def shares(self) -> list[float]:
        """Each consumer's share of the published events (lambda_i / lambda): 1 each for a broadcast."""
        return self.rates(1.0)

    def describe(self) -> dict[str, object]:
        """For summary.json: the audience, and how many events each consumer was given (min, median, max)."""
        counts = sorted(self.events_per_consumer().values())
        out: dict[str, object] = {"kind": self.kind, "consumers": len(self.consumers), "skew_s": self.skew_s}
        if self.kind == "topics":
            out.update(topics=self.topics, subscriptions=len(self.follows[0]) if self.follows else 0)
        if counts:
            out["events_per_consumer"] = {"min": counts[0], "median": counts[len(counts) // 2], "max": counts[-1]}
        return out

    def events_per_consumer(self) -> dict[str, int]:
        """Consumer -> workload events assigned to it (a broadcast: every event)."""
        if self.kind == "per-consumer":
            out = dict.fromkeys(self.consumers, 0)
            for i in self.target:
                out[self.consumers[i]] += 1
            return out
        if self.kind == "topics":
            per_topic = [0] * self.topics
            for k in self.target:
                per_topic[k] += 1
            return {c: sum(per_topic[k] for k in ks) for c, ks in zip(self.consumers, self.follows, strict=True)}
        return dict.fromkeys(self.consumers, len(self.target))


def plan_audience(
    kind: str, consumers: list[str], events: int, seed: int, *, skew_s: float = 0.0, topics: int = 0, subscriptions: int = 0
) -> AudiencePlan:
    """Assign each of ``events`` to its consumer (per-consumer) or topic (topics), seeded by ``seed``.

    The draw depends only on the audience settings, the seed and the number of
    consumers, so every style with the same consumer count gets the same
    assignment. A broadcast assigns nothing: every consumer gets every event.
    """
    rng = random.Random(seed + AUDIENCE_SEED_OFFSET)
    names = tuple(consumers)
    if kind == "per-consumer":
        cum = list(itertools.accumulate(skew_weights(len(names), skew_s)))
        return AudiencePlan(kind, names, tuple(rng.choices(range(len(names)), cum_weights=cum, k=events)), skew_s=skew_s)
    if kind == "topics":
        if not 1 <= subscriptions <= topics:
            raise ConfigError(f"subscriptions: must be from 1 to topics ({topics}); got {subscriptions}")
        follows = tuple(tuple(sorted(rng.sample(range(topics), subscriptions))) for _ in names)
        cum = list(itertools.accumulate(skew_weights(topics, skew_s)))
        target = tuple(rng.choices(range(topics), cum_weights=cum, k=events))
        return AudiencePlan(kind, names, target, follows, topics=topics, skew_s=skew_s)
    return AudiencePlan("broadcast", names, tuple(range(events)))


def audience_for(settings: RunSettings, consumers: list[str], events: int) -> AudiencePlan:
    """The audience plan a run's settings ask for, over one style's consumers."""
    return plan_audience(
        settings.audience,
        consumers,
        events,
        settings.workload.seed,
        skew_s=parse_skew(settings.consumer_skew),
        topics=settings.topics or 0,
        subscriptions=settings.subscriptions or 0,
    )
