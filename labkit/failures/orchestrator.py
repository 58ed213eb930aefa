"""One style of a failure run: the servers, the workload, the fault at its moment, the measurements.

``run_style`` has the runner's signature and returns the runner's
``StyleRun`` (plus a ``fault`` block), so ``labkit.runner.run`` hands a run
whose settings carry a ``fault`` to it and writes the results as for any
other run. Within one style:

1. a fresh provider and the style's consumer start on loopback (the
   receiver's and the poller's records in a SQLite *file*, so a SIGKILL
   loses nothing that was committed); with a network fault a
   ``labkit.servers.netproxy`` proxy sits between consumer and provider;
2. the workload is published on its timetable while the fault is injected
   at its times: processes are stopped, SIGKILLed and restarted on the same
   database file and the same port; receiver faults are switched on and off
   with SIGUSR1/SIGUSR2; the proxy is switched on and off;
3. after the last publish the run drains until every consumer holds every
   event the provider committed (webhooks: or until nothing is left in the
   outbox, as after a 410), or the drain timeout passes;
4. the provider's log and outbox and the consumer's records are read back
   and turned into lost, duplicates, retries, dead letters and catch-up times.

Per style: ``retries`` are webhook delivery attempts beyond the first, or
polls that failed or were throttled (the poller asks again on a later tick);
``duplicates_seen`` are repeated webhook-ids the receiver acknowledged, or
events a poller fetched that it already held; ``duplicates_processed`` are
events processed more than once (0 when de-duplication holds). A fault
"ends" when it is lifted: a restart is issued, a window closes.

API keys and webhook secrets are random per run and live only in the
private work directory (settings files 0600, databases); nothing under
``results/`` holds them, and no process logs them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from labkit.config import RunSettings
from labkit.consumers import records
from labkit.errors import RunError, ServerError
from labkit.failures import measures
from labkit.failures.measures import Episode
from labkit.failures.plans import (
    ConsumerDown,
    ConsumerKill,
    NetworkFault,
    ProviderKill,
    ReceiverErrors,
    ReceiverGone,
    ReceiverSlow,
    Throttle,
)
from labkit.provider.store import Store
from labkit.servers.netproxy import EMULATION, Impairment, NetProxy
from labkit.servers.procs import Child, ProcessGroup
from labkit.wire.metering import histogram_summary_ms, new_histogram, record_us
from labkit.wire.signing import new_secret
from labkit.workload import Workload

START_DELAY_S = 0.3
PUBLISH_RETRY_S = 0.1
PUBLISH_GIVE_UP_S = 60.0
CONTROL_TIMEOUT_S = 2.0
MID_DISPATCH_WAIT_S = 2.0

Progress = Callable[[str, int, int], None]


def _quiet(phase: str, done: int, total: int) -> None:
    return None


@dataclass
class _Role:
    """A role's current process, and what its earlier lifetimes used and counted."""

    name: str
    role: str
    settings: dict[str, Any]
    child: Child
    port: int | None = None
    lifetimes: int = 1
    cpu_s: float = 0.0
    counters: list[dict[str, Any]] = field(default_factory=list)
    wires: list[dict[str, Any]] = field(default_factory=list)

    @property
    def next_name(self) -> str:
        return f"{self.name}.{self.lifetimes}"


class FailureLab:
    """Runs one style of a failure run; ``run()`` returns the runner's ``StyleRun``."""

    def __init__(self, style: str, settings: RunSettings, workload: Workload, work_dir: Path, progress: Progress = _quiet) -> None:
        if settings.fault is None:
            raise RunError("a failure run needs a fault plan")
        self.style = style
        self.settings = settings
        self.fault = settings.fault
        self.workload = workload
        self.dir = work_dir / style
        self.dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.label = f"{style} / {self.fault.kind}"
        self.provider_db = self.dir / "provider.db"
        self.consumer_db = self.dir / "consumer.db"
        self.stats_path = self.dir / "consumer.stats.json"
        # Fresh per run, never written outside the work directory.
        self.consumer_key = "lk_" + secrets.token_urlsafe(18)
        self.publisher_key = "lk_" + secrets.token_urlsafe(18)
        self.secret = new_secret()
        self.consumers: list[str] = []
        self.consumer_of: dict[str, str] = {}  # subscription id -> consumer name
        self.episodes: list[Episode] = []
        self.proxy: NetProxy | None = None
        self.control: httpx.AsyncClient
        self.provider: _Role
        self.consumer: _Role
        self.group: ProcessGroup
        self.t0_ns = 0
        self.t0 = 0.0
        self.publish_end_ns = 0
        self.publish_errors = 0
        self.publish_retries = 0
        self.published_by_publisher = 0
        self.lateness = new_histogram()
        self.drained = False
        self.drain_s = 0.0
        self.cpu_start = (0.0, 0.0)

    # -- settings of each process ---------------------------------------------------------

    def _provider_settings(self) -> dict[str, Any]:
        from labkit.runner import _provider_settings

        s = _provider_settings(self.settings, self.provider_db, self.settings.poll_interval_s)
        s["api_keys"] = [self.consumer_key, self.publisher_key]
        s["allowed_callback_hosts"] = ["127.0.0.1"]
        f = self.fault
        if isinstance(f, ReceiverSlow):
            s["delivery_timeout_s"] = f.delivery_timeout_s
        if isinstance(f, Throttle) and self.style == "polling":
            s["key_rate_limits"] = {self.consumer_key: [f.rate_limit_per_s, f.rate_limit_burst]}
        return s

    def _receiver_settings(self, provider_url: str) -> dict[str, Any]:
        s: dict[str, Any] = {
            "secrets": [self.secret],
            "db_path": str(self.consumer_db),
            "stats_path": str(self.stats_path),
            "provider_url": provider_url,
            "api_key": self.consumer_key,
            "seed": self.settings.workload.seed,
        }
        f = self.fault
        windowed = True
        if isinstance(f, ReceiverSlow):
            s["delay_ms"] = f.delay_ms
        elif isinstance(f, ReceiverErrors):
            s.update(fail_rate=f.rate, fail_status=f.status)
        elif isinstance(f, Throttle):
            s.update(fail_rate=f.rate, fail_status=429, retry_after_s=f.retry_after_s)
        elif isinstance(f, ReceiverGone):
            s["gone"] = True
        elif isinstance(f, ProviderKill):
            s["delay_ms"] = f.receiver_delay_ms  # every acknowledgement is slow, so the kill lands mid-dispatch
            windowed = False
        else:
            windowed = False
        if windowed:
            s["fault_trigger"] = "signal"
        return s

    def _poller_settings(self, base_url: str) -> dict[str, Any]:
        st = self.settings
        return {
            "base_url": base_url,
            "api_key": self.consumer_key,
            "pollers": st.pollers,
            "interval_s": st.poll_interval_s,
            "conditional": st.conditional,
            "long_poll_wait_s": st.long_poll_wait_s,
            "adaptive": st.adaptive,
            "db_path": str(self.consumer_db),
            "stats_path": str(self.stats_path),
            "seed": st.workload.seed,
        }

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Any:
        with ProcessGroup(self.dir) as group:
            self.group = group
            asyncio.run(self._main())
        return self._result()

    async def _main(self) -> None:
        f = self.fault
        settings = self._provider_settings()
        child = await asyncio.to_thread(self.group.start_server, "provider", "provider", settings)
        self.provider = _Role("provider", "provider", settings, child, port=child.port)
        net = isinstance(f, NetworkFault)
        imp, active = Impairment(), True
        if isinstance(f, NetworkFault):
            imp = Impairment(delay_ms=f.delay_ms, jitter_ms=f.jitter_ms, loss=f.loss, rto_ms=f.rto_ms, reset=f.reset)
            active = f.at_s == 0
        async with httpx.AsyncClient(timeout=CONTROL_TIMEOUT_S * 5) as control:
            self.control = control
            if self.style == "webhook":
                rsettings = self._receiver_settings(self.provider.child.url)
                child = await asyncio.to_thread(self.group.start_server, "receiver", "receiver", rsettings)
                self.consumer = _Role("receiver", "receiver", rsettings, child, port=child.port)
                url = child.url
                if net:
                    self.proxy = NetProxy("127.0.0.1", child.port or 0, imp, seed=self.settings.workload.seed, active=active)
                    await self.proxy.start()
                    url = self.proxy.url
                await self._subscribe(url)
            else:
                base = self.provider.child.url
                if net:
                    self.proxy = NetProxy("127.0.0.1", self.provider.port or 0, imp, seed=self.settings.workload.seed, active=active)
                    await self.proxy.start()
                    base = self.proxy.url
                self.consumers = [f"p{i}" for i in range(self.settings.pollers)]
                psettings = self._poller_settings(base)
                child = self.group.start_worker("poller", "poller", psettings)
                self.consumer = _Role("poller", "poller", psettings, child)
            self.cpu_start = (self.provider.child.cpu_s(), self.consumer.child.cpu_s())
            try:
                self.t0 = time.monotonic() + START_DELAY_S
                self.t0_ns = time.time_ns() + int(START_DELAY_S * 1e9)
                injector = asyncio.create_task(self._inject())
                await self._publish()
                self.publish_end_ns = time.time_ns()
                await injector
                if isinstance(f, Throttle) and self.style == "polling":
                    self.episodes.append(Episode("poller key rate-limited", self.t0_ns, self.publish_end_ns, {}))
                if isinstance(f, NetworkFault) and f.duration_s == 0:
                    self.episodes.append(Episode("network impaired", self.t0_ns, None, {}))
                await self._drain()
                await self._collect_final()
            finally:
                if self.proxy is not None:
                    await self.proxy.stop()

    async def _subscribe(self, receiver_url: str) -> None:
        self.consumers = [f"s{i}" for i in range(self.settings.subscribers)]
        headers = {"authorization": f"Bearer {self.consumer_key}"}
        for name in self.consumers:
            r = await self.control.post(
                f"{self.provider.child.url}/subscriptions",
                json={"url": f"{receiver_url}/webhook/{name}", "secret": self.secret},
                headers=headers,
            )
            if r.status_code != 201:
                raise RunError(f"could not subscribe the receiver: {r.status_code} {r.text[:200]}")
            self.consumer_of[r.json()["id"]] = name

    # -- publishing, open loop, riding out a provider crash ------------------------------------

    async def _publish(self) -> None:
        wl = self.workload
        total = len(wl)
        done = 0
        event_type = wl.settings.event_type
        headers = {"authorization": f"Bearer {self.publisher_key}", "content-type": "application/json"}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=10.0, limits=limits, headers=headers) as client:

            async def one(i: int) -> None:
                nonlocal done
                body = orjson.dumps({"type": event_type, "payload": wl.payloads[i]})
                give_up = time.monotonic() + PUBLISH_GIVE_UP_S
                while True:
                    try:
                        # The provider's URL is read each time: it keeps its port across restarts.
                        resp = await client.post(f"{self.provider.child.url}/events", content=body)
                        if resp.status_code == 201:
                            self.published_by_publisher += 1
                            break
                        if resp.status_code < 500 and resp.status_code != 429:
                            self.publish_errors += 1
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > give_up:
                        self.publish_errors += 1
                        break
                    self.publish_retries += 1
                    await asyncio.sleep(PUBLISH_RETRY_S)
                done += 1

            tasks = []
            for i, off in enumerate(wl.offsets_s):
                delay = self.t0 + off - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                record_us(self.lateness, (time.monotonic() - (self.t0 + off)) * 1e6)
                tasks.append(asyncio.create_task(one(i)))
                if i % 16 == 0:
                    self.progress(f"{self.label}: publishing", done, total)
            await asyncio.gather(*tasks)
        self.progress(f"{self.label}: publishing", total, total)

    # -- faults ------------------------------------------------------------------------------

    async def _until(self, at_s: float) -> None:
        delay = self.t0 + at_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _inject(self) -> None:
        f = self.fault
        if isinstance(f, ConsumerDown):
            await self._until(f.at_s)
            started = time.time_ns()
            await self._stop_consumer()
            await self._until(f.at_s + f.duration_s)
            self.episodes.append(Episode("consumer stopped", started, time.time_ns(), await self._restart(self.consumer)))
        elif isinstance(f, ConsumerKill):
            for at in f.at_s:
                await self._until(at)
                await self._snapshot_counters(self.consumer)
                started = time.time_ns()
                self.consumer.cpu_s += _cpu(self.consumer.child)
                await asyncio.to_thread(self.group.kill, self.consumer.child)
                await asyncio.sleep(f.restart_after_s)
                self.episodes.append(Episode("consumer SIGKILLed", started, time.time_ns(), await self._restart(self.consumer)))
        elif isinstance(f, ProviderKill):
            for at in f.at_s:
                await self._until(at)
                in_flight = await self._wait_mid_dispatch() if self.style == "webhook" else None
                started = time.time_ns()
                self.provider.cpu_s += _cpu(self.provider.child)
                await asyncio.to_thread(self.group.kill, self.provider.child)
                await asyncio.sleep(f.restart_after_s)
                ended = time.time_ns()
                detail = await self._restart(self.provider)
                self.episodes.append(Episode("provider SIGKILLed", started, ended, {"in_flight_at_kill": in_flight, **detail}))
        elif isinstance(f, (ReceiverSlow, ReceiverErrors)) or (isinstance(f, Throttle) and self.style == "webhook"):
            await self._until(f.at_s)
            self.consumer.child.popen.send_signal(signal.SIGUSR1)
            started = time.time_ns()
            await self._until(f.at_s + f.duration_s)
            self.consumer.child.popen.send_signal(signal.SIGUSR2)
            self.episodes.append(Episode(f.describe(), started, time.time_ns(), {}))
        elif isinstance(f, ReceiverGone):
            await self._until(f.at_s)
            self.consumer.child.popen.send_signal(signal.SIGUSR1)
            self.episodes.append(Episode("receiver answers 410", time.time_ns(), None, {}))
        elif isinstance(f, NetworkFault) and f.at_s > 0 and self.proxy is not None:
            await self._until(f.at_s)
            self.proxy.active = True
            started = time.time_ns()
            if f.duration_s > 0:
                await self._until(f.at_s + f.duration_s)
                self.proxy.active = False
                self.episodes.append(Episode("network impaired", started, time.time_ns(), {}))
            else:
                self.episodes.append(Episode("network impaired", started, None, {}))

    async def _wait_mid_dispatch(self) -> int | None:
        """Wait (briefly) until the dispatcher has deliveries in flight; return how many."""
        deadline = time.monotonic() + MID_DISPATCH_WAIT_S
        headers = {"authorization": f"Bearer {self.consumer_key}"}
        in_flight = None
        while time.monotonic() < deadline:
            try:
                r = await self.control.get(f"{self.provider.child.url}/stats", headers=headers, timeout=CONTROL_TIMEOUT_S)
                in_flight = int(r.json()["dispatcher"]["in_flight"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                in_flight = None
            if in_flight:
                return in_flight
            await asyncio.sleep(0.01)
        return in_flight

    async def _stop_consumer(self) -> None:
        role = self.consumer
        role.cpu_s += _cpu(role.child)
        await asyncio.to_thread(self.group.stop, role.child)
        self._read_stats_file(role)  # a stopped consumer wrote its final counters

    async def _snapshot_counters(self, role: _Role) -> None:
        """Counters of a process about to be SIGKILLed: exact over HTTP for the receiver,
        the last stats file (written every 0.5 s) for the poller."""
        if role.role == "receiver":
            try:
                r = await self.control.get(f"{role.child.url}/stats", timeout=CONTROL_TIMEOUT_S)
                snap = r.json()
                role.counters.append(snap.get("counters", {}))
                role.wires.append(snap.get("wire", {}))
                return
            except (httpx.HTTPError, ValueError):
                pass
        self._read_stats_file(role)

    def _read_stats_file(self, role: _Role) -> None:
        try:
            snap = json.loads(self.stats_path.read_text())
        except (OSError, json.JSONDecodeError):
            return
        role.counters.append(snap.get("counters", {}))
        role.wires.append(snap.get("wire", {}))

    async def _restart(self, role: _Role) -> dict[str, Any]:
        """Start ``role`` again on the same database file (and, for a server, the same port).

        The fault ends when the restart is issued; a server's start-up time is
        reported beside it (``ready_after_s``) and is part of the catch-up.
        """
        name = role.next_name
        role.lifetimes += 1
        issued = time.monotonic()
        if role.port is not None:
            role.child = await asyncio.to_thread(self.group.start_server, name, role.role, role.settings, port=role.port)
            return {"ready_after_s": time.monotonic() - issued}
        role.child = self.group.start_worker(name, role.role, role.settings)
        return {}

    # -- draining and collecting -------------------------------------------------------------

    async def _drain(self) -> None:
        created = measures.provider_events(str(self.provider_db))
        expected = len(created)
        total = expected * len(self.consumers)
        start = time.monotonic()
        while True:
            counts = records.received_counts(str(self.consumer_db))
            got = sum(min(counts.get(c, 0), expected) for c in self.consumers)
            self.progress(f"{self.label}: draining", got, total)
            if got >= total or (self.style == "webhook" and measures.pending_deliveries(str(self.provider_db)) == 0):
                self.drained = got >= total or not self.fault.promises_no_loss
                break
            if time.monotonic() - start > self.settings.drain_timeout_s:
                break
            for role in (self.provider, self.consumer):
                if not role.child.alive():
                    raise ServerError(f"{role.child.name} died during the failure run: {role.child.log_tail()}")
            await asyncio.sleep(0.05)
        self.drain_s = time.monotonic() - start

    async def _collect_final(self) -> None:
        self.provider.cpu_s += _cpu(self.provider.child)
        await self._stop_consumer()
        await asyncio.to_thread(self.group.stop, self.provider.child)

    # -- results -------------------------------------------------------------------------------

    def _result(self) -> Any:
        from labkit.runner import StyleRun, _delivery_rtt_s

        created = measures.provider_events(str(self.provider_db))
        rows = records.load_events(str(self.consumer_db))
        received = measures.first_received(rows)
        counters = measures.merge_counters(self.consumer.counters)
        wire = measures.merge_counters(self.consumer.wires)
        events = [
            (self.style, consumer, event_id, created[event_id], got)
            for (consumer, event_id), got in sorted(received.items())
            if event_id in created
        ]
        webhook = self.style == "webhook"
        deliveries = Store.delivery_summary_at(str(self.provider_db)) if webhook else {}
        return StyleRun(
            style=self.style,
            published_ids=sorted(created),
            publish_errors=self.publish_errors,
            publish_lateness_ms=histogram_summary_ms(self.lateness),
            consumers=self.consumers,
            drained=self.drained,
            drain_s=self.drain_s,
            provider_cpu_s=self.provider.cpu_s,
            consumer_cpu_s=self.consumer.cpu_s,
            consumer_stats={"counters": counters, "wire": wire},
            deliveries=deliveries,
            delivery_rtt_s=_delivery_rtt_s(self.provider_db) if webhook else None,
            events=events,
            provider_cpu_start_s=self.cpu_start[0],
            consumer_cpu_start_s=self.cpu_start[1],
            fault=self._fault_block(created, received, counters, deliveries),
        )

    def _fault_block(
        self,
        created: dict[int, int],
        received: dict[tuple[str, int], int],
        counters: dict[str, Any],
        deliveries: dict[str, Any],
    ) -> dict[str, Any]:
        f = self.fault
        webhook = self.style == "webhook"
        unique = len([k for k in received if k[1] in created])
        lost = measures.lost(created, received, self.consumers)
        episodes = []
        for ep in self.episodes:
            catch_up = measures.catch_up_s(created, received, self.consumers, ep.ended_ns) if ep.ended_ns else None
            episodes.append(
                {
                    "what": ep.what,
                    "at_s": (ep.started_ns - self.t0_ns) / 1e9,
                    "outage_s": (ep.ended_ns - ep.started_ns) / 1e9 if ep.ended_ns else None,
                    "catch_up_s": catch_up,
                    **{k: v for k, v in ep.detail.items() if not k.endswith("_ns")},
                }
            )
        catch_ups = [e["catch_up_s"] for e in episodes if e["catch_up_s"] is not None]
        windows = [(ep.started_ns, ep.ended_ns or self.publish_end_ns) for ep in self.episodes]
        during, outside = measures.split_latency(created, received, windows)
        if webhook:
            seen = int(counters.get("duplicates", 0))
            processed_total = int(counters.get("events_recorded", 0))
            attempts = measures.delivery_attempts(str(self.provider_db), self.consumer_of)
            retry = measures.retry_effect(created, received, attempts)
            retries = int(deliveries.get("retries", 0))
        else:
            seen = int(counters.get("duplicate_events", 0))
            processed_total = int(counters.get("events", 0))
            retry = {}
            retries = int(counters.get("errors", 0)) + int(counters.get("throttled", 0))
        block: dict[str, Any] = {
            "kind": f.kind,
            "description": f.describe(),
            "plan": f.model_dump(mode="json"),
            "promises_no_loss": f.promises_no_loss,
            "published": len(created),
            "delivered": unique,
            "lost": lost,
            "loss_ok": lost == 0 or not f.promises_no_loss,
            "duplicates_seen": seen,
            # Events the consumer counted as newly processed, over all its lifetimes, beyond the
            # unique events it holds: 0 when de-duplication held. (A SIGKILLed poller's last 0.5 s
            # of counters are lost, which can only lower this figure.)
            "duplicates_processed": max(processed_total - unique, 0),
            "retries": retries,
            "dead_lettered": int(deliveries.get("dead", 0)) if webhook else 0,
            "disabled": int(deliveries.get("disabled", 0)) if webhook else 0,
            "attempt_status_counts": deliveries.get("attempt_status_counts", {}) if webhook else {},
            "failed_polls": None if webhook else int(counters.get("errors", 0)),
            "throttled_polls": None if webhook else int(counters.get("throttled", 0)),
            **retry,
            "episodes": episodes,
            "catch_up_s": max(catch_ups) if catch_ups else None,
            # None when the fault was never lifted (a 410 disables the endpoint for good).
            "outage_s": None if any(e["outage_s"] is None for e in episodes) else sum((e["outage_s"] for e in episodes), 0.0),
            "latency_during_fault_ms": during,
            "latency_outside_fault_ms": outside,
            "provider_restarts": self.provider.lifetimes - 1,
            "consumer_restarts": self.consumer.lifetimes - 1,
            "publish_retries": self.publish_retries,
        }
        if self.proxy is not None:
            block["network"] = {"emulation": EMULATION, **self.proxy.stats.snapshot()}
        return block


def _cpu(child: Child) -> float:
    value = child.cpu_s()
    return 0.0 if value != value else value  # NaN once the process is gone


def run_style(style: str, settings: RunSettings, workload: Workload, work_dir: Path, progress: Progress = _quiet) -> Any:
    """The runner's ``run_style`` for a run with a fault: returns a ``StyleRun`` with a ``fault`` block."""
    return FailureLab(style, settings, workload, work_dir, progress).run()
