"""The interface a delivery style implements, and what the pipeline offers it.

A style is one module: a ``StyleInfo`` (name, label, colour, ...) plus a
``Style`` subclass that knows which consumer processes it starts from the run
settings, how to read their counters, what its summary block and model are,
and how the report names its variants. The pipeline (``labkit.lab.session``)
only calls these methods; it never asks which style it holds. ``Lab`` is the
pipeline seen from a style or a fault injector: the few things they may use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from labkit.styles import registry
from labkit.styles.registry import StyleInfo

if TYPE_CHECKING:
    from labkit.config import NetworkProfile, RunSettings
    from labkit.model.calibration import Base
    from labkit.model.network import LatencyTerms
    from labkit.servers.procs import Child


def as_number(value: Any) -> float | None:
    """A setting read from a results row as a number (numpy scalars, strings), or None."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def mean_latency_s(run: Any) -> float | None:
    """The mean of a run's event latencies (created in the provider to recorded by the consumer), or None."""
    events = run.events
    if not events:
        return None
    return sum(r - c for *_, c, r in events) / len(events) / 1e9


def with_base(block: dict[str, Any], base: Base) -> dict[str, Any]:
    """A model block that names its base's source (``calibration <id>`` or ``none``) and the costs it took from it."""
    block["base_source"] = base.source
    block["base"] = base.block()
    return block


def network_profile(settings: RunSettings) -> NetworkProfile:
    """The run's network profile; loopback (nothing added) when the run names none."""
    from labkit.config.network import shipped

    return settings.network if settings.network is not None else shipped("loopback")


def with_network(block: dict[str, Any], terms: LatencyTerms, settings: RunSettings) -> dict[str, Any]:
    """A style's model block with its mean latency built from the network's terms (``labkit.model.network``).

    Every style calls this with its own terms (webhook, polling, streams, ...), so a
    model block always says which profile, TLS and connection policy it assumed
    and how many milliseconds each term contributes.
    """
    profile = network_profile(settings)
    block["latency_mean_ms"] = terms.total_s * 1000
    ms = {k.removesuffix("_s"): v * 1000 for k, v in terms.as_dict().items() if isinstance(v, float)}
    # Milliseconds under keys that say so (``base_ms``, ..., ``total_ms``); the ``_s`` keys hold the same
    # milliseconds and are kept for readers of earlier results (deprecated: keys are only ever added).
    block["network_terms_ms"] = {**{f"{k}_ms": v for k, v in ms.items()}, **{f"{k}_s": v for k, v in ms.items()}}
    block["network"] = {
        "profile": profile.name,
        "spec": profile.spec(),
        "tls": settings.tls,
        "webhook_connection": settings.webhook_connection,
    }
    if not profile.is_loopback or settings.tls:
        block["assumes"] = f"{block.get('assumes', '')}; network {profile.name} ({profile.spec()}){', TLS' if settings.tls else ''}".lstrip(
            "; "
        )
    return block


@dataclass(frozen=True)
class ProjectedScale:
    """The scale a capacity projection asks a style about: what its modelled requests per event depend on."""

    rate_per_s: float
    poll_interval_s: float = 1.0
    batch: int = 1
    retries_per_event: float = 0.0
    long_poll_wait_s: float = 0.0
    page_limit: int | None = 100


@dataclass
class Role:
    """A process role (provider, receiver, poller): its current process and its earlier lifetimes' counts."""

    name: str
    role: str
    settings: dict[str, Any]
    child: Child
    port: int | None = None
    lifetimes: int = 1
    cpu_s: float = 0.0
    counters: list[dict[str, Any]] = field(default_factory=list)
    wires: list[dict[str, Any]] = field(default_factory=list)
    # The stats file a worker writes (None: the run's ``Lab.stats_path``); a companion has its own.
    stats_path: Path | None = None

    @property
    def next_name(self) -> str:
        return f"{self.name}.{self.lifetimes}"


class Tuner(Protocol):
    """The part of a fault injector a style sees: it adjusts a process's settings before it starts."""

    def tune(self, role: str, settings: dict[str, Any], lab: Lab) -> None: ...


class Lab(Protocol):
    """What the pipeline offers a style and a fault injector during one style's run."""

    settings: RunSettings
    dir: Path
    provider_db: Path
    consumer_db: Path
    stats_path: Path
    consumer_key: str
    secret: str
    provider: Role
    consumer: Role
    consumers: list[str]
    consumer_of: dict[str, str]
    # The audience (labkit.lab.workload.AudiencePlan): per consumer, in consumer_names order, its own
    # scoped API key ([] for a broadcast) and the topics it follows ([] unless the audience is topics).
    consumer_keys: list[str]
    consumer_topics: list[tuple[str, ...]]
    # Processes a style starts beside its consumer and appends here (the hybrid's reconciling poller fleet):
    # the session counts their CPU, checks they are alive, stops them and keeps their final counters.
    companions: list[Role]

    @property
    def fault(self) -> Tuner: ...

    @property
    def style(self) -> Style: ...

    async def start(self, name: str, role: str, settings: dict[str, Any], *, server: bool) -> Role: ...

    async def link(self, host: str, port: int) -> str:
        """The URL a consumer-provider hop uses to reach ``host:port`` (a network fault puts a proxy there)."""
        ...

    async def get_json(self, url: str, *, auth: bool = False) -> dict[str, Any] | None: ...

    async def post_json(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | str]: ...


class Style(ABC):
    """One delivery style: how a run starts, reads and summarises it, and how reports name it."""

    info: StyleInfo

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def window_counters(self) -> tuple[str, ...]:
        """The consumer counters a run brackets over the workload window: requests and what the style declares."""
        return ("requests", *self.info.window_counters)

    # -- settings ------------------------------------------------------------------------------

    def refuse(self, settings: RunSettings) -> str | None:
        """A one-line reason when ``settings`` ask for something this style cannot do, naming the setting."""
        return None

    def provider_settings(self, settings: RunSettings) -> dict[str, Any]:
        """The provider settings this style's run needs beyond the common ones (batching, poll hint, ...)."""
        return {}

    @abstractmethod
    def consumer_names(self, settings: RunSettings) -> list[str]:
        """The logical consumers a run of these settings follows (subscribers, pollers, ...)."""

    # -- the run ---------------------------------------------------------------------------------

    @abstractmethod
    async def start_consumer(self, lab: Lab) -> Role:
        """Start this style's consumer process(es) against ``lab.provider``; sets ``lab.consumers``."""

    @abstractmethod
    async def counters_now(self, lab: Lab) -> dict[str, Any]:
        """The consumer's counters at this moment, exactly (the window is bracketed with them)."""

    def drains_to_last(self, settings: RunSettings) -> bool:
        """True when a consumer is done once it holds the last event (a feed that skips versions)."""
        return False

    def settled(self, lab: Lab) -> bool:
        """True when nothing more can reach the consumers (so the drain may stop early)."""
        return False

    async def in_flight(self, lab: Lab) -> int | None:
        """Deliveries the provider has on the wire now (a provider kill waits for some); None if not pushed."""
        return None

    def provider_side(self, provider_db: Path) -> tuple[dict[str, Any], float | None]:
        """What the provider's database says of delivery (outbox summary, mean delivery RTT)."""
        return {}, None

    # -- results ---------------------------------------------------------------------------------

    @abstractmethod
    def summary(self, run: Any, settings: RunSettings, per: int, rate: float) -> dict[str, Any]:
        """This style's keys of its summary.json block, its ``model`` block included.

        ``run`` is a ``labkit.lab.outcome.StyleRun``; ``per`` the expected deliveries
        (events x consumers); ``rate`` the realised publish rate.
        """

    def predict(self, settings: RunSettings, calibration: Any) -> dict[str, Any] | None:
        """This style's model block at ``settings`` before any run, from the machine's calibration alone; None without a model.

        The same block ``summary`` puts beside a measurement, made from nothing
        a run measured (``labkit.runs.predictions`` writes it before a decision's runs).
        """
        return None

    def calibrates(self) -> bool:
        """True when ``labkit.lab.calibrate`` runs this style (False: its model's base is other styles' calibration)."""
        return True

    def calibration_consumers(self) -> int:
        """Consumers in this style's calibration run (``labkit.lab.calibrate``): one, unless a cost needs a fan-out."""
        return 1

    def calibration_runs(self) -> tuple[int, ...]:
        """The consumers of each of this style's calibration runs: one run of ``calibration_consumers``, unless
        its costs need runs of different sizes (each run's costs are merged, ``calibration_costs`` per run)."""
        return (self.calibration_consumers(),)

    def calibration_cost_names(self) -> tuple[str, ...]:
        """The costs this style's calibration measures: a cached calibration without one of them is measured
        again (made before the style measured it). Empty: not declared, never judged stale."""
        return ()

    def calibration_costs(self, run: Any, settings: RunSettings) -> dict[str, float]:
        """This style's loopback costs (seconds) from a calibration run (``labkit.lab.calibrate``): its model's base.

        The default is the mean latency of the run, created to recorded; a style
        whose model needs other costs measures them here and names them in its model.
        """
        mean = mean_latency_s(run)
        return {"latency_s": mean} if mean is not None else {}

    @abstractmethod
    def fault_measures(self, counters: Mapping[str, Any], deliveries: Mapping[str, Any], retry: dict[str, Any]) -> dict[str, Any]:
        """This style's part of a fault block: duplicates seen and processed, retries, dead letters."""

    def retry_attempts(self, provider_db: Path, consumer_of: Mapping[str, str]) -> dict[tuple[str, int], int] | None:
        """(consumer, event id) -> attempts its delivery took, when the provider retries deliveries."""
        return None

    # -- analysis and reports ----------------------------------------------------------------------

    @abstractmethod
    def variant(self, setting: Callable[[str], Any], assumes: str) -> str:
        """The report's name for the variant a results row measured (``setting(name)`` reads the row)."""

    def projected_requests_per_event(
        self,
        rate_per_s: float,
        poll_interval_s: float,
        batch: int,
        retries_per_event: float,
        long_poll_wait_s: float,
        page_limit: int | None,
    ) -> tuple[float, str]:
        """Requests per event the model predicts at a projected scale, and a line naming the variant."""
        return self.project(ProjectedScale(rate_per_s, poll_interval_s, batch, retries_per_event, long_poll_wait_s, page_limit))

    @abstractmethod
    def project(self, scale: ProjectedScale) -> tuple[float, str]:
        """This style's model of requests per event at ``scale``, and a line naming the variant."""

    def model_curve_label(self, batch: int) -> str | None:
        """The figures' label of this style's model curve (requests per event against lambda T); None draws none."""
        return None

    def model_requests_per_event(self, lambda_t: Any, batch: int) -> tuple[Any, str] | None:
        """Model curve of requests per event against lambda T (numpy array in, array out) for figures.

        lambda T is read as the rate at a 1 s interval, so every style's curve comes from its ``project``.
        """
        label = self.model_curve_label(batch)
        if label is None:
            return None
        return lambda_t * 0 + [self.project(ProjectedScale(float(x), 1.0, batch))[0] for x in lambda_t], label

    def shows_interval(self) -> bool:
        """True when a poll interval is part of what this style measured (report tables show it)."""
        return False


def unit(name: str) -> Style:
    """The runnable unit of style ``name``; ConfigError names an unknown one."""
    return cast(Style, registry.unit_of(name))


def units() -> list[Style]:
    """Every runnable style, in display order."""
    return [unit(info.name) for info in registry.all_styles()]
