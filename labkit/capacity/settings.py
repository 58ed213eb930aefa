"""What one capacity run is: its scenario, its SLO, its steps, and where its processes listen.

``CapacitySettings`` is validated and immutable; the CLI builds it from options
and the library never sees the CLI. Everything listens on 127.0.0.1 unless a
setting names another address (``server_bind``, ``master_bind``): a capacity
run exposes nothing to the network by default.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from labkit.capacity import analysis
from labkit.capacity.stepping import default_settle, default_steps
from labkit.config import Settings
from labkit.servers.procs import usable_cores

# A capacity scenario's name: the stem of its locustfile (``SCENARIOS`` holds the known ones).
Scenario = str

EXPECT_WORKERS_WAIT_S = 30.0
# A search (no --max-users) climbs to at most this many users: about what one machine's open files and
# loopback ports allow a load generator, and far above what one Python server holds.
SEARCH_MAX_USERS = 20_000
SEARCH_DURATION_S = 540.0  # a search ends within 10 minutes, servers and analysis included
SEARCH_STEP_S = 12.0
SEARCH_START_USERS = 100
DEFAULT_MASTER_PORT = 5557  # Locust's own default, so a plain `locust --worker` finds it
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ScenarioSpec:
    """A capacity scenario as a unit: what it needs started and prepared, what its SLO is measured on, and its verdict.

    ``run_capacity`` asks these, never the scenario's name: the servers to start (``servers``), the one
    Locust points at (``target``), whether the provider's log is pre-filled and fed in the background
    (``background_events``), whether the receiver is subscribed to the provider so each event's
    delivery lag is recorded (``subscribes_receiver``), and the statement of the capacity found, a
    template over ``at_least``, ``users``, ``rps``, ``p99``, ``t`` (the interval) and ``subscriptions``.
    """

    locustfile: str
    servers: tuple[str, ...]
    target: str  # the server Locust's --host points at
    interval_option: str
    slo_metric: tuple[str, str] = analysis.AGGREGATED
    rate_metric: tuple[str, str] = analysis.AGGREGATED
    # the provider is pre-filled and publishes at ``publish_rate`` in the background; users start at its head
    background_events: bool = False
    subscribes_receiver: bool = False
    # each user can follow its own consumer's feed with its own key (``--audience per-consumer``)
    per_consumer: bool = False
    statement: str = (
        "the dispatcher keeps the delivery lag p99 at {p99} up to {at_least}{rps:.0f} events/s "
        "across {subscriptions} subscriptions ({users} publishers, one event every {t} s each)"
    )

    @property
    def name(self) -> str:
        """The scenario's name, as ``labkit capacity SCENARIO`` takes it: its locustfile's stem."""
        return self.locustfile.removesuffix(".py")


_SPECS = (
    ScenarioSpec(
        "polling.py",
        ("provider",),
        "provider",
        "--poll-interval",
        background_events=True,
        per_consumer=True,
        statement="one provider instance holds {at_least}{users} pollers at a {t} s interval ({rps:.0f} requests/s) within a p99 of {p99}",
    ),
    ScenarioSpec(
        "webhook_ingest.py",
        ("receiver",),
        "receiver",
        "--send-interval",
        statement="one receiver ingests {at_least}{rps:.0f} signed webhooks/s ({users} senders, one every {t} s each) within a p99 of {p99}",
    ),
    ScenarioSpec(
        "publish_fanout.py",
        ("receiver", "provider"),
        "provider",
        "--send-interval",
        ("LAG", "delivery"),
        ("POST", "/events"),
        subscribes_receiver=True,
    ),  # fmt: skip
    # held SSE streams: the SLO is on the delivery lag of each event read from a stream
    ScenarioSpec("streams.py", ("provider",), "provider", "--event-interval", ("LAG", "stream"), ("LAG", "stream"), background_events=True),
)
SCENARIOS: dict[str, ScenarioSpec] = {spec.name: spec for spec in _SPECS}


def check_scenario(name: str) -> str:
    """A known scenario's name; ValueError names the known ones."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return name


def check_address(host: str, field_name: str) -> str:
    """An IPv4 or IPv6 address (no name, no wildcard: the workers are told this address)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{field_name}: {host!r} is not an IP address") from None
    if addr.is_unspecified and field_name in ("server_bind", "master", "source"):
        raise ValueError(f"{field_name}: give one address ({host} means every interface)")
    return host


def check_local(host: str, field_name: str) -> str:
    """An address this host can listen on or send from; otherwise a ValueError (not a 39-line bind traceback later).

    Binds a throwaway socket to port 0 of the address: nothing is sent, and
    the socket is closed at once.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError as exc:
        raise ValueError(f"{field_name}: {host} is not an address of this host ({exc.strerror or exc})") from None
    return host


HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def parse_host_port(value: str, field_name: str, names_ok: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a checked pair; a DNS name only where ``names_ok``."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{field_name}: {value!r} is not HOST:PORT (e.g. 127.0.0.1:5557)")
    if names_ok and HOSTNAME.match(host) and not host.replace(".", "").isdigit():
        return host, int(port_text)
    return check_address(host, field_name), int(port_text)


class CapacitySettings(Settings):
    """One capacity run."""

    scenario: Scenario
    slo_p99_ms: float = Field(100.0, gt=0, le=600_000)
    max_failure_ratio: float = Field(0.01, ge=0, le=1)
    max_users: int = Field(200, ge=1, le=100_000)
    duration_s: float = Field(60.0, ge=5, le=24 * 3600)
    workers: int = Field(0, ge=0, le=64)
    expect_workers: int = Field(0, ge=0, le=1024, description="Locust workers started elsewhere that the master waits for")
    master_bind: str | None = Field(None, description="HOST:PORT the Locust master listens on for workers (default 127.0.0.1)")
    server_bind: str = Field(LOOPBACK, description="address the servers listen on; not loopback only when asked")
    workers_wait_s: float = Field(EXPECT_WORKERS_WAIT_S, gt=0, le=3600, description="how long the master waits for its workers")
    interval_s: float = Field(1.0, gt=0, le=3600, description="seconds between one user's requests (the poll interval T)")
    step_users: int | None = Field(None, ge=1, le=100_000)
    step_seconds: float | None = Field(None, ge=2, le=3600)
    subscriptions: int = Field(3, ge=1, le=100, description="publish_fanout: subscriptions per event")
    publish_rate: float = Field(1.0, ge=0, le=1000, description="polling, streams: background events per second")
    prefill_events: int = Field(200, ge=0, le=100_000, description="polling, streams: events in the log before the run")
    audience: Literal["broadcast", "per-consumer"] = Field(
        "broadcast", description="polling: per-consumer gives each user its own consumer's feed and key; events go to the users in turn"
    )
    out_dir: str = "results"
    scenarios_dir: str | None = None
    server_settings: dict[str, dict[str, Any]] = Field(default_factory=dict, description="overrides per server role")
    search: bool = Field(False, description="find the limit: climb from step_users by search_factor, then bisect; max_users is the cap")
    search_factor: float = Field(2.0, gt=1, le=10)
    search_tolerance: float = Field(0.10, gt=0, lt=1)
    max_workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="a search adds local Locust workers up to this many when Locust runs out of CPU (default: one per core)",
    )

    scenario_known = field_validator("scenario")(check_scenario)

    @model_validator(mode="after")
    def _steps(self) -> CapacitySettings:
        if self.step_seconds is not None and self.step_seconds > self.duration_s:
            raise ValueError("step_seconds: must not exceed the duration")
        if self.audience != "broadcast" and not SCENARIOS[self.scenario].per_consumer:
            able = ", ".join(name for name, spec in SCENARIOS.items() if spec.per_consumer)
            raise ValueError(f"audience: scenario {self.scenario!r} has no per-consumer audience (scenarios with one: {able})")
        unknown = sorted(set(self.server_settings) - {"provider", "receiver"})
        if unknown:
            raise ValueError(f"server_settings: unknown server {unknown[0]!r}")
        if self.master_bind is not None:
            check_local(parse_host_port(self.master_bind, "master_bind")[0], "master_bind")
            if not (self.workers or self.expect_workers):
                raise ValueError("master_bind: a master needs workers: add --expect-workers N (or --workers W)")
        check_local(check_address(self.server_bind, "server_bind"), "server_bind")
        return self

    @property
    def distributed(self) -> bool:
        # a search runs as a master from the start, so workers can join when Locust runs out of CPU
        return bool(self.workers or self.expect_workers or self.master_bind or self.search)

    def search_workers(self) -> tuple[int, int]:
        """A search's (first, most) local workers: one to start with, up to one per usable core."""
        first = max(self.workers, 1)
        return first, max(first, self.max_workers or len(usable_cores()))

    def master_address(self) -> tuple[str, int]:
        """(host, port) of the master; port 0 means a free one (local workers only)."""
        if self.master_bind is not None:
            return parse_host_port(self.master_bind, "master_bind")
        return LOOPBACK, (DEFAULT_MASTER_PORT if self.expect_workers else 0)

    def plan(self) -> tuple[int, float, float]:
        """(step_users, step_seconds, settle_seconds); for a search, step_users is the first step's users."""
        if self.search:
            seconds = self.step_seconds or SEARCH_STEP_S
            users = min(self.step_users or SEARCH_START_USERS, self.max_users)
            # a step's users are spawned within about 2 s (SEARCH_SPAWN_S), then start within one interval
            return users, seconds, min(seconds / 2, 2.0 + self.interval_s)
        users, seconds = default_steps(self.max_users, self.duration_s, self.step_seconds)
        users = min(self.step_users or users, self.max_users)
        # New users start within one interval (their phases are spread over it): wait that long.
        settle = max(default_settle(seconds), min(self.interval_s, seconds / 2))
        return users, seconds, settle


class WorkerSettings(Settings):
    """One Locust worker that joins a master started elsewhere (``labkit capacity-worker``)."""

    master: str = Field(description="HOST:PORT of the master (labkit capacity --master-bind); HOST may be a name")
    scenario: Scenario
    source: str | None = Field(None, description="local address to connect from (a machine with several)")
    timeout_s: float = Field(7200.0, gt=0, le=7 * 24 * 3600, description="the worker is stopped after this long")
    scenarios_dir: str | None = None

    scenario_known = field_validator("scenario")(check_scenario)

    @model_validator(mode="after")
    def _addresses(self) -> WorkerSettings:
        parse_host_port(self.master, "master", names_ok=True)
        if self.source is not None:
            check_local(check_address(self.source, "source"), "source")
        return self

    def master_address(self) -> tuple[str, int]:
        return parse_host_port(self.master, "master", names_ok=True)


class StandaloneServerSettings(Settings):
    """A capacity scenario's server on its own (``labkit capacity-server``), for workers on other hosts."""

    role: Literal["provider", "receiver"]
    bind: str = Field(description="HOST:PORT to listen on; 0.0.0.0 is every interface (in a container)")
    db_path: str
    secret: str = Field("", description="receiver: the whsec_ secret (from LABKIT_SECRET, never the command line)")
    allowed_callback_hosts: tuple[str, ...] = ()
    interval_s: float = Field(1.0, gt=0, le=3600, description="provider: the poll interval it advertises")

    @model_validator(mode="after")
    def _checked(self) -> StandaloneServerSettings:
        host, _ = parse_host_port(self.bind, "bind")
        ipaddress.ip_address(host)
        if self.role == "receiver" and not self.secret:
            raise ValueError("secret: the receiver needs a whsec_ secret: set LABKIT_SECRET")
        return self
