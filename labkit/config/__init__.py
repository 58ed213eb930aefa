"""Validated, immutable settings for every part of the lab.

Servers, consumers and runs each take one of these value objects; nothing in
the library sees a CLI object. ``validated`` turns pydantic's errors into a
``ConfigError`` whose one-line message names the field and what is allowed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from labkit.config.faults import FaultPlan
from labkit.errors import ConfigError

# The Standard Webhooks example schedule: entry k is the delay before attempt k+1
# (immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h; about 75 h in all).
SPEC_RETRY_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)

DEFAULT_API_KEY = "lab-key"

# The shortest poll interval: below a millisecond a poller is a busy loop (1e-9 s gave 307 requests
# per event), which measures the CPU, not polling.
MIN_POLL_INTERVAL_S = 0.001

# A name that becomes a folder under the results root: one safe path component. No separator, and
# no leading dot, so neither '.', '..' nor a hidden folder.
SAFE_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$"
SAFE_NAME_RULE = "1-100 letters, digits, '_', '.' or '-', not starting with '.'"

# Svix disables an endpoint whose deliveries have all failed for 5 days; compressed by time_scale
# like the retry schedule.
DISABLE_AFTER_FAILING_S = 5 * 86_400.0


MAX_PROCESSES = 256
# Consumers (pollers or streams) of one run: a stream fleet beyond one process's open files spreads over processes.
MAX_CONSUMERS = 100_000


def _processes(value: Any) -> Any:
    """A process count: a whole number from 1 to ``MAX_PROCESSES``, or "auto" (one per core)."""
    if value == "auto":
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if type(value) is not int or not 1 <= value <= MAX_PROCESSES:
        raise ValueError(f"must be a whole number from 1 to {MAX_PROCESSES}, or 'auto' (one per core); got {value!r}")
    return value


# How many processes share a consumer fleet or the receiver (labkit.consumers.processes splits and merges).
Processes = Annotated[int | Literal["auto"], BeforeValidator(_processes)]


class Settings(BaseModel):
    """Base: frozen, unknown fields are errors rather than silently ignored, and a number must be finite.

    Without ``allow_inf_nan=False`` a ``nan`` (``--rate nan``) reached the
    range checks, and every comparison with NaN is false: it was refused as
    "less than or equal to 100000", which it is not; pydantic now says
    "Input should be a finite number".
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ServerLimits(Settings):
    """What every lab server refuses before the app sees a request (``labkit.servers.serverlimits``).

    A request line plus headers over ``max_head_bytes`` or ``max_headers`` gets
    431; a client that has not sent its whole head within ``head_timeout_s``
    (slowloris), or its whole body within ``body_timeout_s``, gets 408 and is
    disconnected; so does a connection that sends nothing for ``head_timeout_s``.
    """

    max_head_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    max_headers: int = Field(100, ge=8, le=10_000)
    head_timeout_s: float = Field(10.0, gt=0, le=600)
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    open_files: int | None = Field(
        None, ge=32, description="the soft open-files limit the server sets itself at start (one per connection); None: its hard limit"
    )


class KeyScope(Settings):
    """What one API key may read: one consumer's events, and/or events of these types (an account-scoped key).

    A feed, a long poll or a stream opened with a scoped key sees only its
    scope; a request's own ``types`` filter narrows it further, never widens it.
    """

    consumer: str | None = Field(None, min_length=1, max_length=100)
    types: tuple[str, ...] = Field((), max_length=50)


class ProviderSettings(Settings):
    """The provider: event log, polling API, subscriptions and the webhook dispatcher."""

    db_path: str = "labkit-provider.db"
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    rate_limit_per_s: float = Field(200.0, ge=0, description="per API key; 0 turns the limit off")
    rate_limit_burst: int | None = Field(
        None, ge=1, description="bucket size per key; None = one second's worth of the rate (labkit.provider.ratelimit)"
    )
    poll_interval_hint_s: float = Field(1.0, gt=0, description="sent as X-Poll-Interval")
    max_wait_s: float = Field(30.0, ge=0, le=60, description="longest long-poll hold")
    page_limit_default: int = Field(100, ge=1, le=10_000)
    page_limit_max: int = Field(1000, ge=1, le=10_000)
    max_body_bytes: int = Field(64 * 1024, ge=256)
    delivery_timeout_s: float = Field(15.0, gt=0, le=60)
    retry_schedule_s: tuple[float, ...] = SPEC_RETRY_SCHEDULE_S
    time_scale: float = Field(1.0, gt=0, le=1.0, description="compresses the retry schedule")
    retry_jitter: float = Field(0.2, ge=0, lt=1)
    disable_after_failing_s: float | None = Field(
        DISABLE_AFTER_FAILING_S,
        gt=0,
        description="disable a subscription whose attempts have all failed for this long (x time_scale); None = never",
    )
    dispatch_concurrency: int = Field(64, ge=1, le=4096)
    batch_max_events: int = Field(1, ge=1, le=1000, description="events per webhook request")
    batch_window_ms: float = Field(0.0, ge=0, le=60_000)
    thin_events: bool = False
    allowed_callback_hosts: tuple[str, ...] = Field((), description="hosts or CIDRs that may be private, loopback or link-local")
    key_rate_limits: dict[str, tuple[float, int]] = Field(
        default_factory=dict, description="per-key (rate_per_s, burst) overriding the default; rate 0 = unlimited"
    )
    max_json_depth: int = Field(32, ge=2, le=512, description="deepest nesting of a published JSON body")
    ca_file: str | None = Field(None, description="extra CA (PEM) the dispatcher trusts, for HTTPS receivers")
    connection_policy: Literal["reuse", "new"] = Field(
        "reuse", description="reuse: keep-alive pool of connections to receivers; new: a connection (and TLS handshake) per delivery"
    )
    limits: ServerLimits = ServerLimits()
    seed: int | None = None
    key_scopes: dict[str, KeyScope] = Field(
        default_factory=dict, description="API keys that read only their own consumer's (or topics') events; valid keys too"
    )
    consumer_key_secret: str | None = Field(
        None,
        min_length=16,
        max_length=200,
        description="keys ck.<consumer>.<mac> made from it (labkit.wire.signing) read only that consumer's events",
    )
    streams: StreamLimits = Field(default_factory=lambda: StreamLimits.model_validate({}), description="SSE and WebSocket streams")

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(s < 0 for s in v):
            raise ValueError("must be a non-empty list of delays >= 0")
        return v

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or any(len(k) < 4 or not k.isprintable() or " " in k for k in v):
            raise ValueError("needs at least one key of 4+ printable characters without spaces")
        return v

    @field_validator("key_scopes")
    @classmethod
    def _scoped_keys(cls, v: dict[str, KeyScope]) -> dict[str, KeyScope]:
        if any(len(k) < 4 or not k.isprintable() or " " in k for k in v):
            raise ValueError("each key has 4+ printable characters without spaces")
        return v


class ReceiverSettings(Settings):
    """The webhook receiver and the faults it can be told to show."""

    secrets: tuple[str, ...] = Field(..., min_length=1, description="whsec_ secrets; several during rotation")
    db_path: str = ":memory:"
    verify: bool = True
    max_body_bytes: int = Field(1024 * 1024, ge=256)
    fail_rate: float = Field(0.0, ge=0, le=1)
    fail_status: int = Field(500, ge=400, le=599)
    retry_after_s: float | None = Field(None, ge=0)
    delay_ms: float = Field(0.0, ge=0, le=120_000)
    down_windows: tuple[tuple[float, float], ...] = ()
    gone: bool = False
    stats_path: str | None = None
    provider_url: str | None = Field(None, description="for thin events: where to fetch the body")
    api_key: str = DEFAULT_API_KEY
    fault_trigger: Literal["always", "signal"] = Field(
        "always", description="signal: the faults above (not down_windows) act only between SIGUSR1 and SIGUSR2"
    )
    limits: ServerLimits = ServerLimits()
    seed: int = 0
    processes: Processes = Field(1, description="uvicorn worker processes sharing the listening socket; 'auto': one per core")
    peers: tuple[str, ...] = Field((), description="set by the receiver's supervisor: its workers' control URLs, merged by GET /stats")

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from labkit.wire.signing import check_secret

        for s in v:
            check_secret(s)
        return v

    @field_validator("down_windows")
    @classmethod
    def _windows(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if any(a < 0 or b <= a for a, b in v):
            raise ValueError("each window is (start_s, end_s) with 0 <= start < end")
        return v


class PollerSettings(Settings):
    """A fleet of pollers following the provider's cursor feed."""

    base_url: str
    api_key: str = DEFAULT_API_KEY
    pollers: int = Field(1, ge=1, le=100_000)
    interval_s: float = Field(1.0, ge=MIN_POLL_INTERVAL_S, le=3600)
    page_limit: int = Field(100, ge=1, le=10_000)
    conditional: bool = True
    long_poll_wait_s: float = Field(0.0, ge=0, le=60)
    adaptive: bool = False
    max_interval_s: float = Field(30.0, gt=0)
    snapshot: bool = False
    timeout_s: float = Field(60.0, gt=0)
    db_path: str = ":memory:"
    stats_path: str | None = None
    seed: int = 0
    http_client: Literal["raw", "httpx"] = Field(
        "raw", description="raw: lean keep-alive client, one connection per poller (scales to 1000s); httpx: counting_client"
    )
    ca_file: str | None = Field(None, description="extra CA (PEM) to trust, for an HTTPS provider")
    processes: Processes = Field(1, description="processes the pollers are split across; 'auto': one per core")
    first_index: int = Field(0, ge=0, description="the first poller's number (p<first_index>): set for one process of several")
    api_keys: tuple[str, ...] = Field((), description="one key per poller of the whole fleet (p0, p1, ...): each reads its own feed")
    consumer_prefix: str = Field(
        "p", pattern=r"^[a-z]{1,8}$", description="the pollers' names are <prefix><n>: a reconciler takes its subscribers' names (s)"
    )
    min_age_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="record only events at least this old (a reconciler: push had its chance); younger ones are read again next poll",
    )


# Network profiles (parsed and shipped in labkit.config.network): the limits of what a profile may say.
MAX_RTT_MS = 10_000.0
MAX_LOSS = 0.5
MIN_RATE_BPS = 1_000.0
MAX_RATE_BPS = 100e9


class NetworkProfile(Settings):
    """What the network between a consumer and the provider does to their traffic.

    ``jitter_ms`` varies each one-way delay uniformly by +/- that much, so the
    mean round trip stays ``rtt_ms``; ``loss`` is the share of chunks that wait
    one retransmission timeout ``rto_ms`` extra (what a lost segment costs
    above TCP); a rate of ``None`` means the link does not limit.
    """

    name: str = Field("custom", min_length=1, max_length=200)
    rtt_ms: float = Field(0.0, ge=0, le=MAX_RTT_MS)
    jitter_ms: float = Field(0.0, ge=0, le=MAX_RTT_MS / 2)
    loss: float = Field(0.0, ge=0, le=MAX_LOSS, description="fraction, 0 to 0.5")
    rate_up_bps: float | None = Field(None, ge=MIN_RATE_BPS, le=MAX_RATE_BPS)
    rate_down_bps: float | None = Field(None, ge=MIN_RATE_BPS, le=MAX_RATE_BPS)
    rto_ms: float = Field(200.0, ge=0, le=60_000, description="Linux's minimum retransmission timeout")
    source: str = Field("given by the user", max_length=2000)

    @model_validator(mode="after")
    def _jitter(self) -> NetworkProfile:
        if self.jitter_ms > self.rtt_ms / 2:
            raise ValueError(f"jitter: {self.jitter_ms:g} ms must be at most the one-way delay (rtt/2 = {self.rtt_ms / 2:g} ms)")
        return self

    @property
    def one_way_ms(self) -> float:
        """The delay each direction adds: half the round trip."""
        return self.rtt_ms / 2

    @property
    def is_loopback(self) -> bool:
        """True when the profile adds nothing (no proxy needed)."""
        return self.rtt_ms == 0 and self.jitter_ms == 0 and self.loss == 0 and self.rate_up_bps is None and self.rate_down_bps is None

    def spec(self) -> str:
        """The profile as a spec string ``parse_network`` reads back to the same numbers."""
        parts = [f"rtt={self.rtt_ms:g}ms", f"jitter={self.jitter_ms:g}ms", f"loss={self.loss * 100:g}%"]
        if self.rate_up_bps == self.rate_down_bps and self.rate_up_bps is not None:
            parts.append(f"rate={format_rate(self.rate_up_bps)}")
        else:
            if self.rate_up_bps is not None:
                parts.append(f"rate_up={format_rate(self.rate_up_bps)}")
            if self.rate_down_bps is not None:
                parts.append(f"rate_down={format_rate(self.rate_down_bps)}")
        if self.rto_ms != 200.0:
            parts.append(f"rto={self.rto_ms:g}ms")
        return ",".join(parts)

    def describe(self) -> dict[str, Any]:
        """For results and reports: every number, the spec string and the source."""
        return {**self.model_dump(), "spec": self.spec(), "one_way_ms": self.one_way_ms}


def format_rate(bps: float) -> str:
    """10000000 -> '10mbit' (the largest unit that keeps the number readable)."""
    for unit, mult in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bps >= mult:
            return f"{bps / mult:g}{unit}"
    return f"{bps:g}bps"


Arrival = Literal["constant", "poisson", "bursty", "trace"]


MAX_WORKLOAD_RATE_PER_S = 100_000  # the most events per second one run publishes (a decision runs at the stated rate)


class WorkloadSettings(Settings):
    """A seeded stream of events: when they arrive and how big they are."""

    arrival: Arrival = "poisson"
    rate_per_s: float = Field(20.0, gt=0, le=MAX_WORKLOAD_RATE_PER_S)
    duration_s: float = Field(10.0, gt=0, le=24 * 3600)
    payload_bytes: int = Field(256, ge=16, le=1024 * 1024)
    seed: int = 1
    event_type: str = Field("order.updated", min_length=1, max_length=100)
    burst_on_s: float = Field(1.0, gt=0)
    burst_off_s: float = Field(4.0, ge=0)
    trace_path: str | None = None
    max_events: int = Field(200_000, ge=1)

    @model_validator(mode="after")
    def _trace(self) -> WorkloadSettings:
        if self.arrival == "trace" and not self.trace_path:
            raise ValueError("arrival 'trace' needs trace_path")
        return self

    @model_validator(mode="after")
    def _event_cap(self) -> WorkloadSettings:
        # Checked from the expected count, before a single arrival is generated: 100 000/s for a day
        # is 8.6e9 offsets, gigabytes of memory before the count could be compared with the cap.
        expected = self.rate_per_s * self.duration_s
        if self.arrival != "trace" and expected > self.max_events:
            raise ValueError(f"rate_per_s x duration_s = {expected:.3g} expected events exceed max_events={self.max_events}; lower either")
        return self


# Who receives which event (labkit.lab.workload.plan_audience assigns each event, seeded).
Audience = Literal["broadcast", "per-consumer", "topics"]
MAX_ZIPF_S = 10.0


def parse_skew(text: str) -> float:
    """``uniform`` -> 0; ``zipf:S`` -> S (the share of the consumer ranked r is proportional to 1/r^S).

    ValueError names what is allowed: S is a finite number from 0 to ``MAX_ZIPF_S``.
    """
    if text == "uniform":
        return 0.0
    kind, sep, raw = text.partition(":")
    try:
        value = float(raw) if kind == "zipf" and sep else float("nan")
    except ValueError:
        value = float("nan")
    if not 0 <= value <= MAX_ZIPF_S:  # NaN fails too
        raise ValueError(f"must be 'uniform' or 'zipf:S' with S a number from 0 to {MAX_ZIPF_S:g} (1/r^S); got {text[:40]!r}")
    return value


def check_audience(audience: str, consumer_skew: str, topics: int | None, subscriptions: int | None) -> None:
    """The audience settings together (run settings and requirements alike); ValueError names the key at fault first."""
    if audience == "topics":
        if topics is None:
            raise ValueError("topics: audience 'topics' needs topics (how many event types there are)")
        if subscriptions is None:
            raise ValueError("subscriptions: audience 'topics' needs subscriptions (how many topics each consumer follows)")
        if subscriptions > topics:
            raise ValueError(f"subscriptions: {subscriptions} is more than the {topics} topics; a consumer follows at most all")
        return
    for name, value in (("topics", topics), ("subscriptions", subscriptions)):
        if value is not None:
            raise ValueError(f"{name}: only with audience 'topics' (audience is {audience!r})")
    if audience == "broadcast" and parse_skew(consumer_skew) != 0:
        raise ValueError("consumer_skew: a broadcast gives every consumer every event; skew needs audience per-consumer or topics")


def receivers_per_event(audience: str, consumers: int, topics: int | None = None, subscriptions: int | None = None) -> float:
    """How many consumers an event reaches on average: all of them, one, or a topic's share (s/K of them).

    With ``event_rate_per_s`` per consumer, the publish rate that gives every
    audience the same deliveries per second is ``event_rate_per_s x consumers / receivers_per_event``.
    """
    if audience == "per-consumer":
        return 1.0
    if audience == "topics" and topics and subscriptions:
        return consumers * subscriptions / topics
    return float(consumers)


# A delivery style's name, as data: which names exist is labkit.styles' to say (``labkit.styles.check``).
Style = str
_STYLE_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


class RunSettings(Settings):
    """One run: a workload delivered by each style against its own fresh provider."""

    workload: WorkloadSettings = WorkloadSettings()
    # Empty: the default comparison, which the styles declare (labkit.styles.resolve fills it in before a run).
    styles: tuple[Style, ...] = ()
    poll_interval_s: float = Field(1.0, ge=MIN_POLL_INTERVAL_S, le=3600)
    pollers: int = Field(
        1,
        ge=1,
        le=MAX_CONSUMERS,
        description="pollers, or streams for a stream style (a stream fleet spreads over as many processes as its open files need)",
    )
    subscribers: int = Field(
        1, ge=1, le=10_000, description="webhook subscriptions, all served by one receiver through per-subscriber paths"
    )
    conditional: bool = True
    long_poll_wait_s: float = Field(0.0, ge=0, le=60)
    adaptive: bool = False
    snapshot: bool = False
    batch_max_events: int = Field(1, ge=1, le=1000)
    batch_window_ms: float = Field(0.0, ge=0, le=60_000)
    thin_events: bool = False
    reconcile_interval_s: float | None = Field(
        None,
        ge=MIN_POLL_INTERVAL_S,
        le=3600,
        description="a reconciling poller's interval, for a style whose consumer reconciles; None: the style chooses one to fit the run",
    )
    time_scale: float = Field(0.001, gt=0, le=1.0)
    drain_timeout_s: float = Field(30.0, gt=0, le=3600)
    rate_limit_per_s: float = Field(0.0, ge=0)
    out_dir: str = "results"
    experiment: str = Field("compare", pattern=SAFE_NAME_PATTERN, description=SAFE_NAME_RULE)
    fault: FaultPlan | None = Field(None, description="what to break during the run (labkit.config.faults)")
    network: NetworkProfile | None = Field(
        None, description="applied to every consumer <-> provider hop (labkit.config.network parses names and specs); None: loopback"
    )
    tls: bool = Field(False, description="serve the provider, the receiver and streams over HTTPS (a local CA)")
    webhook_connection: Literal["reuse", "new"] = Field(
        "reuse", description="the webhook sender's connections: a keep-alive pool, or a new one per delivery"
    )
    consumer_processes: Processes = Field(
        1, description="processes for the poller fleet, the stream consumers and the receiver; 'auto': one per core"
    )
    audience: Audience = Field(
        "broadcast",
        description="broadcast: every consumer gets every event; per-consumer: each event is one consumer's;"
        " topics: each event has one of `topics` types and goes to every consumer subscribed to it",
    )
    consumer_skew: str = Field("uniform", description="how events spread over consumers (or topics): uniform, or zipf:S (1/r^S)")
    topics: int | None = Field(None, ge=1, le=10_000, description="audience topics: how many event types")
    subscriptions: int | None = Field(None, ge=1, le=10_000, description="audience topics: how many types each consumer follows")
    provider_open_files: int | None = Field(
        None, ge=32, description="the provider's soft open-files limit (each stream holds one); None: raised to its hard limit"
    )
    provider_core: bool = Field(
        False,
        description="pin the provider to a core of its own and every consumer process to the other cores (needs two usable cores;"
        " the run records whether it applied, and both CPU shares)",
    )

    @field_validator("styles")
    @classmethod
    def _styles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # Names only: which styles exist and what each can honour is the styles layer's to judge (labkit.styles.check).
        bad = next((s for s in v if not _STYLE_NAME.fullmatch(s)), None)
        if bad is not None:
            raise ValueError(f"no style {bad[:40]!r}: a style name is lower-case letters, digits and dashes")
        if len(set(v)) != len(v):
            raise ValueError("must name each style at most once")
        return v

    @field_validator("consumer_skew")
    @classmethod
    def _skew(cls, v: str) -> str:
        parse_skew(v)
        return v

    @model_validator(mode="after")
    def _audience(self) -> RunSettings:
        check_audience(self.audience, self.consumer_skew, self.topics, self.subscriptions)
        return self


S = TypeVar("S", bound=Settings)


def describe_error(exc: ValidationError, prefix: str = "") -> str:
    """One line from a pydantic error: the first field at fault and what is allowed."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown setting"
    elif err["type"] == "finite_number":
        msg = f"{err.get('input')} is not a number; give a finite number"
    where = f"{prefix}{loc}" if loc else prefix.rstrip(".: ")
    return f"{where}: {msg}" if where else msg


def validated(model: type[S], data: dict[str, Any], prefix: str = "") -> S:
    """Build a settings object or raise ConfigError with a one-line message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, prefix)) from None


# -- streams (Server-Sent Events and WebSocket) -------------------------------------------


class StreamLimits(Settings):
    """The provider's streams: per-connection bounds that keep a slow consumer from costing the others.

    A connection whose queue (events handed to it but not yet written to its
    socket) passes ``queue_max_events`` or ``queue_max_bytes``, or whose write
    waits for its socket longer than ``stall_timeout_s`` (while it catches up
    or live), is disconnected with the reason and resumes from its cursor when
    it reconnects. Catch-up writes at most ``catchup_max_bytes`` at a time.
    """

    queue_max_events: int = Field(1000, ge=1, le=1_000_000)
    queue_max_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    heartbeat_s: float = Field(15.0, gt=0, le=3600, description="SSE comment / idle keep-alive")
    retry_ms: int = Field(1000, ge=0, le=3_600_000, description="the SSE retry: field")
    max_streams: int = Field(100_000, ge=1, le=1_000_000, description="open streams beyond this get 503")
    catchup_page: int = Field(500, ge=1, le=10_000, description="events read per query while a stream catches up")
    first_message_timeout_s: float = Field(10.0, gt=0, le=600, description="WebSocket: wait this long for the cursor")
    drop_grace_s: float = Field(1.0, ge=0, le=60, description="time to write the reason before a dropped stream is cut")
    catchup_max_bytes: int = Field(
        64 * 1024, ge=1024, le=64 * 1024 * 1024, description="frame bytes per catch-up write (at least one event), read and held at once"
    )
    stall_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="a stream whose write waits this long for its socket (catch-up or live) is dropped and cut"
    )


# The stream transports, named by the wire rather than by the styles that use them: the Server-Sent
# Events media type (text/event-stream) and WebSocket's URI scheme (RFC 6455 section 3). A style says
# which one its consumers speak (labkit.styles.stream); servers and the model branch on these.
StreamTransport = Literal["event-stream", "ws"]
EVENT_STREAM: Final[StreamTransport] = "event-stream"
WS: Final[StreamTransport] = "ws"


class StreamConsumerSettings(Settings):
    """A fleet of stream consumers (SSE or WebSocket) held by one process."""

    base_url: str
    protocol: StreamTransport = EVENT_STREAM
    api_key: str = DEFAULT_API_KEY
    connections: int = Field(1, ge=1, le=100_000)
    types: tuple[str, ...] = ()
    record: bool = Field(True, description="False: count frames only (the fan-out benchmark)")
    db_path: str = ":memory:"
    stats_path: str | None = None
    connect_spread_s: float = Field(1.0, ge=0, le=600, description="first connects spread uniformly over this")
    backoff_initial_s: float = Field(0.1, gt=0, le=60)
    backoff_max_s: float = Field(10.0, gt=0, le=3600)
    idle_timeout_s: float = Field(60.0, gt=0, le=3600, description="no byte (not even a heartbeat) for this long: reconnect")
    connect_timeout_s: float = Field(10.0, gt=0, le=600)
    seed: int = 0
    processes: Processes = Field(1, description="processes the connections are split across; 'auto': one per core")
    first_index: int = Field(0, ge=0, description="the first consumer's number (c<first_index>): set for one process of several")
    api_keys: tuple[str, ...] = Field((), description="one key per stream of the whole fleet (c0, c1, ...): each its own events")
    ca_file: str | None = Field(None, description="extra CA (PEM) to trust, for an HTTPS provider")
    source_address: str | None = Field(None, description="the loopback address (127.0.0.0/8) every connection is bound to")

    @field_validator("source_address")
    @classmethod
    def _loopback_source(cls, v: str | None) -> str | None:
        """Only a loopback address: the lab's traffic never leaves the machine."""
        if v is not None and not (re.fullmatch(r"127(\.\d{1,3}){3}", v) and all(int(p) <= 255 for p in v.split("."))):
            raise ValueError(f"must be a loopback IPv4 address (127.0.0.0/8); got {v!r}")
        return v


ProviderSettings.model_rebuild()
