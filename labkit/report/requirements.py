"""What the user needs, read from a TOML file and validated.

A requirements file states the numbers and constraints of one integration::

    name = "Payments provider notifying merchants"
    use_case = "payment status changes pushed to merchants' order systems"
    target_latency_p99_ms = 250
    event_rate_per_s = 0.5          # events each consumer receives, per second
    burstiness = "bursty"           # steady | bursty
    consumers = 2000
    consumers_can_expose_https = true
    data_sensitivity = "sensitive"  # public | internal | sensitive
    ordering = "per-key"            # none | per-key | total
    missed_events_tolerated = false
    duplicates_tolerated = false
    network = "cross-region"        # a profile name, a spec string, or a [network] table
    tls = true                      # every hop over HTTPS
    audience = "per-consumer"       # broadcast | per-consumer | topics: who receives which event
    consumer_skew = "zipf:1.1"      # uniform | zipf:S: how events spread over consumers (or topics)

    [budget]
    bandwidth_gb_per_month = 2000
    servers = 4

``network`` is what lies between the provider and its consumers (see
``labkit.config.network``: ``loopback``, ``same-region``, ``cross-region``,
``intercontinental``, ``mobile``, or ``"rtt=80ms,loss=0.5%"``, or a table such
as ``[network]`` with ``profile = "mobile"`` and ``loss = "2%"``); not stated,
the runs are on loopback. ``tls`` says whether every hop is HTTPS.

``audience`` says who receives which event (``broadcast``, the default: every
consumer every event; ``per-consumer``: each event is one consumer's own;
``topics``: each event has one of ``topics`` types and reaches the consumers
that follow it, ``subscriptions`` each), and ``consumer_skew`` how unevenly
(``uniform`` or ``zipf:S``). ``event_rate_per_s`` stays the rate each
consumer receives on average, so every audience means the same deliveries
per second.

A file must state the three numbers a decision rests on,
``target_latency_p99_ms``, ``event_rate_per_s`` and ``consumers`` (an empty or
comments-only file used to run a whole decision on defaults, silently); every
other key is optional. An unknown key, a wrong type (strictly: ``"yes"`` is
not a boolean), an impossible value, a missing required key, or a path that is
not a small regular file (``/dev/zero``, a FIFO, a folder, over
``MAX_FILE_BYTES``) is a ``ConfigError`` whose one line names the file and
the key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from labkit.config import Audience, Settings, check_audience, describe_error, parse_skew, receivers_per_event
from labkit.config.files import read_capped
from labkit.config.network import SHIPPED, NetworkProfile, network_from
from labkit.errors import ConfigError

DEFAULT_NAME = "Default profile"
MAX_FILE_BYTES = 256 * 1024
REQUIRED = ("target_latency_p99_ms", "event_rate_per_s", "consumers")


class Strict(Settings):
    """Frozen, unknown keys refused, and no coercion: a TOML string is never a number or a boolean."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Budget(Strict):
    """What the integration may spend; ``None`` means no stated limit."""

    bandwidth_gb_per_month: float | None = Field(None, gt=0, description="all consumers together")
    servers: int | None = Field(None, ge=1, description="provider instances")


class Requirements(Strict):
    """One integration's needs: the input of the decision."""

    name: str = Field(DEFAULT_NAME, min_length=1, max_length=200)
    use_case: str = Field("", max_length=2000)
    target_latency_p99_ms: float = Field(1000.0, gt=0, le=7 * 24 * 3600 * 1000)
    event_rate_per_s: float = Field(1.0, gt=0, le=1_000_000, description="events each consumer receives per second")
    burstiness: Literal["steady", "bursty"] = "steady"
    consumers: int = Field(1, ge=1, le=100_000_000)
    consumers_can_expose_https: bool = True
    data_sensitivity: Literal["public", "internal", "sensitive"] = "internal"
    ordering: Literal["none", "per-key", "total"] = "none"
    missed_events_tolerated: bool = False
    duplicates_tolerated: bool = True
    network: NetworkProfile | None = Field(None, description="None: not stated (the lab's loopback)")
    tls: bool = False
    audience: Audience = "broadcast"
    consumer_skew: str = "uniform"
    topics: int | None = Field(None, ge=1, le=10_000)
    subscriptions: int | None = Field(None, ge=1, le=10_000)
    budget: Budget = Budget.model_validate({})

    @field_validator("consumer_skew")
    @classmethod
    def _skew(cls, v: str) -> str:
        parse_skew(v)
        return v

    @model_validator(mode="after")
    def _audience(self) -> Requirements:
        check_audience(self.audience, self.consumer_skew, self.topics, self.subscriptions)
        return self

    def publish_rate(self, rate_per_consumer: float, consumers: int) -> float:
        """Events published per second so that each of ``consumers`` receives ``rate_per_consumer`` on average (the audience's)."""
        return rate_per_consumer * consumers / receivers_per_event(self.audience, consumers, self.topics, self.subscriptions)

    @field_validator("network", mode="before")
    @classmethod
    def _network(cls, v: Any) -> Any:
        if v is None or isinstance(v, NetworkProfile):
            return v
        if not isinstance(v, (str, dict)):
            raise ValueError("must be a profile name, a spec string such as 'rtt=80ms,loss=0.5%', or a table")
        try:
            return network_from(v, source="network")
        except ConfigError as exc:  # one line already; pydantic adds the file and the key
            raise ValueError(str(exc).removeprefix("network: ").removeprefix("network.")) from None

    @property
    def network_profile(self) -> NetworkProfile:
        """The stated profile, or loopback when none is stated."""
        return self.network if self.network is not None else SHIPPED["loopback"]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    def as_table(self) -> list[tuple[str, Any]]:
        """(key, value) in file order, for the report."""
        rows: list[tuple[str, Any]] = []
        for key, value in self.model_dump().items():
            if key == "network":
                p = self.network
                rows.append((key, "not stated (loopback)" if p is None else p.name if p.name == p.spec() else f"{p.name} ({p.spec()})"))
            elif isinstance(value, dict):
                rows.extend((f"{key}.{k}", v) for k, v in value.items())
            else:
                rows.append((key, value))
        return rows


def parse_requirements(data: dict[str, Any], source: str = "requirements") -> Requirements:
    """Requirements from a mapping; errors name ``source`` and the key."""
    try:
        return Requirements.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, prefix=f"{source}: ")) from None


def load_requirements(path: str | os.PathLike[str]) -> Requirements:
    """Read and validate a requirements TOML file (see the module doc for what is refused)."""
    path = Path(path)
    raw = read_capped(path, str(path), "a requirements file", MAX_FILE_BYTES)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read requirements file (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {str(exc).splitlines()[0]}") from None
    req = parse_requirements(data, source=str(path))
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ConfigError(
            f"{path}: states no {', '.join(missing)}; a requirements file needs at least "
            "target_latency_p99_ms, event_rate_per_s and consumers (see scenarios/requirements/)"
        )
    return req


def default_requirements(rate_per_s: float | None = None, consumers: int | None = None) -> Requirements:
    """The profile used when no file is given: the measured workload, a 1 s p99 target, nothing missed."""
    data: dict[str, Any] = {"name": DEFAULT_NAME, "use_case": "not stated (no requirements file given)"}
    if rate_per_s and rate_per_s > 0:
        data["event_rate_per_s"] = float(rate_per_s)
    if consumers and consumers >= 1:
        data["consumers"] = int(consumers)
    return Requirements.model_validate(data)
