"""Fault plans: what to break in a run, when, and for how long.

A plan is a ``RunSettings.fault``; an experiment file sets one per variant::

    [variants.receiver-killed]
    fault = { kind = "consumer_kill", at_s = [1.5, 3.5] }

Times (``at_s``) count from the moment publishing starts. Each kind says
which families of styles it applies to (``families``: push, pull, stream): a
consumer crash exists in every family, a receiver that answers 410 only where
the provider pushes to the consumer's endpoint. Which styles belong to a family
is the style registry's to say. Faults and their counterparts per family:

    kind              push (webhook: provider pushes)            pull (polling: consumer asks)
    none              baseline                                    baseline
    consumer_down     receiver stopped, restarted after           poller stopped, restarted after
                      duration_s (same db file, same port)        duration_s (same db file)
    consumer_kill     receiver SIGKILLed at each at_s,            poller SIGKILLed at each at_s,
                      restarted after restart_after_s             restarted after restart_after_s
    provider_kill     provider SIGKILLed mid-dispatch, restarted  provider SIGKILLed, restarted on
                      on the same db and port                     the same db and port
    receiver_slow     receiver slower than the delivery timeout   -
    receiver_errors   a share of deliveries answered 5xx          -
    throttle          a share answered 429 + Retry-After          per-key rate limit on the poller's key
    receiver_gone     receiver answers 410 (endpoint disabled)    -
    receiver_dead     receiver answers 5xx for the rest of the    -
                      run; the provider's disable policy
                      disables the endpoint
    network           delay, jitter, loss and resets through a user-space TCP proxy (every style)

The stream family (SSE, WebSocket: a fleet of held streams, the provider pushes) takes none,
consumer_down, consumer_kill (the fleet), provider_kill, network (the proxy sits on the
fleet's hop to the provider) and their own kind:

    stream_drop       every stream cut at each at_s (SIGUSR2 to the fleet); each resumes after its last id
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The families a style belongs to (``labkit.styles.StyleInfo.family``): the provider pushes to an endpoint
# the consumer exposes (push), the consumer asks (pull), or the provider pushes down a connection the
# consumer opened and holds (stream). A plan names the families it applies to; which styles those are
# is the registry's to say (``labkit.styles.check`` refuses a run whose styles a plan does not apply to).
Family = Literal["push", "pull", "stream"]
FAMILIES: tuple[Family, ...] = ("push", "pull", "stream")
PUSH: tuple[Family, ...] = ("push",)
PUSH_AND_PULL: tuple[Family, ...] = ("push", "pull")
STREAM: tuple[Family, ...] = ("stream",)


class _Plan(BaseModel):
    """Frozen, strict about unknown fields; TOML arrays arrive as lists and become tuples."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    families: ClassVar[tuple[Family, ...]] = FAMILIES
    # False where the design accepts losing events (a 410 disables the endpoint by design).
    promises_no_loss: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _tuples(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return data

    def describe(self) -> str:
        """One line for tables and logs."""
        return self.kind  # type: ignore[attr-defined, no-any-return]


def _times(v: tuple[float, ...]) -> tuple[float, ...]:
    if not v or any(t < 0 for t in v) or list(v) != sorted(v):
        raise ValueError("must be a non-empty, ascending list of seconds >= 0")
    return v


class NoFault(_Plan):
    """The baseline: nothing breaks."""

    kind: Literal["none"] = "none"

    def describe(self) -> str:
        return "baseline (no fault)"


class ConsumerDown(_Plan):
    """The consumer process is stopped (SIGTERM) for a while, then started again on the same db."""

    kind: Literal["consumer_down"] = "consumer_down"
    at_s: float = Field(1.5, ge=0)
    duration_s: float = Field(2.0, gt=0, le=600)

    def describe(self) -> str:
        return f"consumer down for {self.duration_s:g} s"


class ConsumerKill(_Plan):
    """The consumer is SIGKILLed (no shutdown code runs) and restarted on the same db (and port)."""

    kind: Literal["consumer_kill"] = "consumer_kill"
    at_s: tuple[float, ...] = (1.5,)
    restart_after_s: float = Field(0.5, ge=0, le=600)

    @field_validator("at_s")
    @classmethod
    def _at(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        return _times(v)

    def describe(self) -> str:
        return f"consumer SIGKILLed x{len(self.at_s)}"


class ProviderKill(_Plan):
    """The provider is SIGKILLed while deliveries are in flight and restarted on the same db and port.

    ``receiver_delay_ms`` slows every webhook acknowledgement so the kill lands
    with deliveries in flight (processed by the receiver, never acknowledged).
    """

    kind: Literal["provider_kill"] = "provider_kill"
    at_s: tuple[float, ...] = (1.5,)
    restart_after_s: float = Field(0.5, ge=0, le=600)
    receiver_delay_ms: float = Field(100.0, ge=0, le=10_000)

    @field_validator("at_s")
    @classmethod
    def _at(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        return _times(v)

    def describe(self) -> str:
        return f"provider SIGKILLed x{len(self.at_s)}"


class ReceiverSlow(_Plan):
    """For a window the receiver answers after ``delay_ms``, beyond the provider's ``delivery_timeout_s``."""

    kind: Literal["receiver_slow"] = "receiver_slow"
    families: ClassVar[tuple[Family, ...]] = PUSH
    at_s: float = Field(1.5, ge=0)
    duration_s: float = Field(2.0, gt=0, le=600)
    delay_ms: float = Field(1500.0, gt=0, le=60_000)
    delivery_timeout_s: float = Field(1.0, gt=0, le=60)

    @model_validator(mode="after")
    def _slower(self) -> ReceiverSlow:
        if self.delay_ms / 1000 <= self.delivery_timeout_s:
            raise ValueError("delay_ms must exceed delivery_timeout_s, or the receiver is not too slow")
        return self

    def describe(self) -> str:
        return f"receiver {self.delay_ms:g} ms > timeout {self.delivery_timeout_s:g} s"


class ReceiverErrors(_Plan):
    """For a window a share ``rate`` of deliveries is answered with ``status`` (5xx)."""

    kind: Literal["receiver_errors"] = "receiver_errors"
    families: ClassVar[tuple[Family, ...]] = PUSH
    at_s: float = Field(1.5, ge=0)
    duration_s: float = Field(2.0, gt=0, le=600)
    rate: float = Field(0.5, gt=0, le=1)
    status: int = Field(500, ge=500, le=599)

    def describe(self) -> str:
        return f"{self.rate:.0%} answered {self.status}"


class Throttle(_Plan):
    """429 with Retry-After: the receiver throttles the provider, or the provider throttles the poller.

    Webhook: for a window a share ``rate`` of deliveries gets 429 and
    ``Retry-After: retry_after_s``. Polling: the poller's API key is limited to
    ``rate_limit_per_s`` (burst ``rate_limit_burst``) for the whole run, so
    polls faster than that get 429 with Retry-After from the provider.
    """

    kind: Literal["throttle"] = "throttle"
    families: ClassVar[tuple[Family, ...]] = PUSH_AND_PULL
    at_s: float = Field(1.5, ge=0)
    duration_s: float = Field(2.0, gt=0, le=600)
    rate: float = Field(0.5, gt=0, le=1)
    retry_after_s: float = Field(1.0, ge=0, le=3600)
    rate_limit_per_s: float = Field(2.0, gt=0)
    rate_limit_burst: int = Field(1, ge=1)

    def describe(self) -> str:
        return "429 + Retry-After"


class ReceiverGone(_Plan):
    """From ``at_s`` the receiver answers 410 Gone: the provider disables the endpoint for good."""

    kind: Literal["receiver_gone"] = "receiver_gone"
    families: ClassVar[tuple[Family, ...]] = PUSH
    promises_no_loss: ClassVar[bool] = False
    at_s: float = Field(1.5, ge=0)

    def describe(self) -> str:
        return "410 Gone (endpoint disabled)"


class ReceiverDead(_Plan):
    """From ``at_s`` the receiver answers ``status`` to every delivery for the rest of the run.

    The endpoint never recovers, so the provider's disable policy
    (``ProviderSettings.disable_after_failing_s``, Svix's rule) disables it. For
    the run the policy's window is ``disable_after_s``, in schedule seconds,
    compressed by the run's ``time_scale`` like the retry schedule (an hour at
    1000x is 3.6 s), so the disable happens within a lab run. To run it, the
    receiver gets ``fail_rate`` 1 and ``fail_status`` ``status`` armed at
    ``at_s`` and never disarmed, and the provider gets
    ``disable_after_failing_s = disable_after_s``.
    """

    kind: Literal["receiver_dead"] = "receiver_dead"
    families: ClassVar[tuple[Family, ...]] = PUSH
    promises_no_loss: ClassVar[bool] = False
    at_s: float = Field(1.5, ge=0)
    status: int = Field(503, ge=500, le=599)
    disable_after_s: float = Field(3600.0, gt=0, description="the provider's disable window for this run (x time_scale)")

    def describe(self) -> str:
        return f"receiver dead ({self.status}), endpoint disabled"


class StreamDrop(_Plan):
    """Every held stream is cut at each ``at_s`` (SIGUSR2 to the consumer fleet); each reconnects and resumes after its last id."""

    kind: Literal["stream_drop"] = "stream_drop"
    families: ClassVar[tuple[Family, ...]] = STREAM
    at_s: tuple[float, ...] = (1.5,)

    @field_validator("at_s")
    @classmethod
    def _at(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        return _times(v)

    def describe(self) -> str:
        return f"streams dropped x{len(self.at_s)}"


class NetworkFault(_Plan):
    """Delay, jitter, loss and resets between consumer and provider, through ``labkit.servers.netproxy``.

    A user-space TCP proxy cannot drop a segment and let TCP retransmit it, so
    ``loss`` is the share of chunks held back for ``rto_ms`` (the stall a lost
    segment costs: Linux's minimum retransmission timeout is 200 ms), and
    ``reset`` the share of chunks on which the connection is aborted with a
    TCP RST. ``duration_s`` 0 means the whole run.
    """

    kind: Literal["network"] = "network"
    at_s: float = Field(0.0, ge=0)
    duration_s: float = Field(0.0, ge=0, le=3600)
    delay_ms: float = Field(20.0, ge=0, le=10_000)
    jitter_ms: float = Field(10.0, ge=0, le=10_000)
    loss: float = Field(0.02, ge=0, le=0.5)
    rto_ms: float = Field(200.0, ge=0, le=10_000)
    reset: float = Field(0.0, ge=0, le=0.5)

    def describe(self) -> str:
        parts = [f"+{self.delay_ms:g}±{self.jitter_ms:g} ms"]
        if self.loss:
            parts.append(f"{self.loss:.0%} loss")
        if self.reset:
            parts.append(f"{self.reset:.0%} resets")
        return "network " + ", ".join(parts)


FaultPlan = Annotated[
    NoFault
    | ConsumerDown
    | ConsumerKill
    | ProviderKill
    | ReceiverSlow
    | ReceiverErrors
    | Throttle
    | ReceiverGone
    | ReceiverDead
    | StreamDrop
    | NetworkFault,
    Field(discriminator="kind"),
]

KINDS: tuple[str, ...] = (
    "none",
    "consumer_down",
    "consumer_kill",
    "provider_kill",
    "receiver_slow",
    "receiver_errors",
    "throttle",
    "receiver_gone",
    "receiver_dead",
    "stream_drop",
    "network",
)
