"""One style's run: the one pipeline every run goes through, with or without a fault.

Within one style:

1. a fresh provider and the style's consumer start on loopback as separate
   processes (the consumer's records in a SQLite *file*, so a SIGKILL loses
   nothing committed); the fault's injector tunes their settings and may sit
   on the consumer-provider hop;
2. the workload is published on its timetable, open loop (a slow publish never
   delays the next), while the injector acts at its times; the consumer's
   counters are read exactly at the start and the end of the workload's time
   axis, so every run reports the same counters over the same window;
3. the run drains until every consumer holds every event the provider
   committed (or the last one, for a feed that skips versions), or until
   nothing more can arrive, or the drain timeout passes;
4. CPU is read, every process stops, and the provider's log and the
   consumer's records become a ``StyleRun`` (with a fault block in a fault run;
   both in ``labkit.lab.outcome``).

API keys and webhook secrets are random per run and live only in the private
work directory (settings files 0600, databases); nothing under ``results/``
holds them, and no process logs them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import BaseModel

from labkit.config import PollerSettings, RunSettings, StreamConsumerSettings
from labkit.consumers import records
from labkit.errors import ConfigError, RunError, ServerError
from labkit.lab import measures
from labkit.lab.faults import injector_for
from labkit.lab.hop import ProxyProcess, network_block
from labkit.lab.measures import Episode
from labkit.lab.outcome import StyleRun, fault_block
from labkit.lab.workload import AudiencePlan, Workload, audience_for
from labkit.provider.store import Store
from labkit.servers.netproxy import Impairment
from labkit.servers.procs import Child, ProcessGroup, core_plan
from labkit.servers.tls import LabCertificates, make_certificates
from labkit.styles.base import Role, Style
from labkit.wire.errors import WireError
from labkit.wire.metering import WireCounter, histogram_summary_ms, new_histogram, record_us
from labkit.wire.pool import HttpClient
from labkit.wire.signing import new_secret

START_DELAY_S = 0.3
PUBLISH_RETRY_S = 0.1
CONTROL_TIMEOUT_S = 2.0
# The publisher's connections to the provider, and the most publishes in flight at once (a semaphore in front of the
# pool, so that an event waiting for a slot counts as late and never spends its timeout queued). The publisher was
# httpx with 256 connections: its pool walks every connection (``has_expired``) and every queued request each time a
# request starts or ends, so at 1,000 events/s over TLS this process fell behind the timetable and its queue made each
# step longer still: a webhook run of 714 subscribers at 1,000 events/s for 15 s took 237 s, 222 s of it counted as
# start-up by the decide planner (5 s of events: 50 s). One provider process answers a publish in about a millisecond,
# so 32 in flight carry more than it accepts.
PUBLISH_CONNECTIONS = 32
PUBLISH_TIMEOUT_S = 30.0
# Client roles whose settings take the lab CA when the run serves HTTPS (a role without the field is left alone).
CA_ROLES: dict[str, type[BaseModel]] = {"poller": PollerSettings, "streams": StreamConsumerSettings}

# progress(phase, done, total): the CLI draws a bar from it; the library draws nothing.
Progress = Callable[[str, int, int], None]


def raise_if_cancelled() -> None:
    """Honour a cancellation (Ctrl-C under ``asyncio.run``) that an await on the way swallowed.

    Python 3.11's ``asyncio.wait_for`` can drop a cancellation that lands as
    its inner await completes; the task still counts the request, so checking
    it at each style's end stops the run there instead of finishing it and
    exiting 0.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def no_progress(phase: str, done: int, total: int) -> None:
    return None


def provider_settings(settings: RunSettings, db_path: Path, api_keys: list[str], style: Style) -> dict[str, Any]:
    """The provider's settings for ``style``'s run of ``settings``: the common ones, then the style's own."""
    return {
        "db_path": str(db_path),
        "api_keys": api_keys,
        "rate_limit_per_s": settings.rate_limit_per_s,
        "poll_interval_hint_s": settings.poll_interval_s,
        "time_scale": settings.time_scale,
        "allowed_callback_hosts": ["127.0.0.1"],
        "seed": settings.workload.seed,
        "connection_policy": settings.webhook_connection,
        **({"limits": {"open_files": settings.provider_open_files}} if settings.provider_open_files else {}),
        **style.provider_settings(settings),
    }


def network_conflict(settings: RunSettings) -> str | None:
    """One line when a run asks for a network profile and a network fault at once (both would own the same hop)."""
    if (
        settings.network is not None
        and not settings.network.is_loopback
        and settings.fault is not None
        and settings.fault.kind == "network"
    ):
        return (
            "network: a network profile and a network fault cannot be combined (both impair the same hop);"
            " drop the profile, or express the fault's delay in the profile"
        )
    return None


def _cpu(child: Child) -> float:
    value = child.cpu_s()
    return 0.0 if value != value else value  # NaN once the process is gone


def _wait(child: Child) -> float:
    value = child.wait_s()
    return 0.0 if value != value else value


class Session:
    """Runs one style of a run (implements ``labkit.styles.base.Lab`` for the style and the injector)."""

    def __init__(self, style: Style, settings: RunSettings, workload: Workload, work_dir: Path, progress: Progress = no_progress) -> None:
        reason = style.refuse(settings) or network_conflict(settings)
        if reason:
            raise ConfigError(f"{style.name}: {reason}")
        self.style = style
        self.settings = settings
        self.workload = workload
        self.fault = injector_for(settings.fault)
        self.dir = work_dir / style.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.label = style.name if settings.fault is None else f"{style.name} / {settings.fault.kind}"
        self.provider_db = self.dir / "provider.db"
        self.consumer_db = self.dir / "consumer.db"
        self.stats_path = self.dir / "consumer.stats.json"
        # Fresh per run, never written outside the work directory.
        self.consumer_key = "lk_" + secrets.token_urlsafe(18)
        self.publisher_key = "lk_" + secrets.token_urlsafe(18)
        self.secret = new_secret()
        # Who receives which event; a non-broadcast audience gives each consumer its own scoped key.
        self.audience: AudiencePlan = audience_for(settings, style.consumer_names(settings), len(workload))
        self.consumer_keys = self.audience.new_keys()
        self.consumer_topics = self.audience.all_topics()
        self.consumers: list[str] = []
        self.consumer_of: dict[str, str] = {}  # subscription id -> consumer name
        self.companions: list[Role] = []
        self.episodes: list[Episode] = []
        self.provider: Role
        self.consumer: Role
        self.group: ProcessGroup
        self.control: httpx.AsyncClient
        self.t0 = 0.0
        self.t0_ns = 0
        self.publish_end_ns = 0
        self.publish_errors = 0
        self.publish_retries = 0
        self.published_by_publisher = 0
        self.lateness = new_histogram()
        self.drained = False
        self.drain_s = 0.0
        self.cpu_start = (0.0, 0.0)
        self.window: dict[str, int] = {}
        self.window_by_consumer: dict[str, dict[str, int]] = {}
        self.provider_stats: dict[str, Any] = {}
        self.provider_rss: tuple[int | None, int | None] = (None, None)
        # HTTPS: a throw-away CA per style's run (private work directory); every client verifies against it.
        self.certs: LabCertificates | None = make_certificates(self.dir / "tls") if settings.tls else None
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(self.certs.ca_file)) if self.certs else True
        self.proxies: list[ProxyProcess] = []
        self.cores = core_plan(settings.provider_core)
        self.cpu_window = (0.0, 0.0)
        self.cpu_wait = (0.0, 0.0)

    # -- what a style and an injector may use (labkit.styles.base.Lab, labkit.lab.faults.FaultLab) --

    async def start(self, name: str, role: str, settings: dict[str, Any], *, server: bool) -> Role:
        if self.certs is not None and role in CA_ROLES and "ca_file" in CA_ROLES[role].model_fields:
            settings.setdefault("ca_file", str(self.certs.ca_file))
        if server:
            tls = self.certs.server if self.certs is not None else None
            child = await asyncio.to_thread(self.group.start_server, name, role, settings, tls=tls, cores=self.cores.cores_for(role))
            return Role(name, role, settings, child, port=child.port)
        return Role(name, role, settings, self.group.start_worker(name, role, settings, cores=self.cores.cores_for(role)))

    async def link(self, host: str, port: int) -> str:
        """The URL of a consumer-provider hop: through the run's network profile (a proxy) or a fault's, https with TLS."""
        profile = self.settings.network
        if profile is not None and not profile.is_loopback:
            seed = self.settings.workload.seed + len(self.proxies)
            # Its own process: the session's publishing and reads never hold a chunk past its due time.
            proxy = ProxyProcess(host, port, Impairment.from_profile(profile), seed=seed)
            self.proxies.append(proxy)
            await asyncio.to_thread(proxy.start)
            url = proxy.url
        else:
            url = await self.fault.link(self, host, port)
        return "https://" + url.removeprefix("http://") if self.certs is not None else url

    async def get_json(self, url: str, *, auth: bool = False) -> dict[str, Any] | None:
        headers = {"authorization": f"Bearer {self.consumer_key}"} if auth else {}
        try:
            r = await self.control.get(url, headers=headers, timeout=CONTROL_TIMEOUT_S)
            body = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    async def post_json(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
        r = await self.control.post(url, json=body, headers={"authorization": f"Bearer {self.consumer_key}"})
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    async def until(self, at_s: float) -> None:
        delay = self.t0 + at_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def stop_consumer(self) -> None:
        role = self.consumer
        role.cpu_s += _cpu(role.child)
        await asyncio.to_thread(self.group.stop, role.child)
        self._read_stats_file(role)  # a stopped consumer wrote its final counters

    async def kill(self, role: Role) -> None:
        role.cpu_s += _cpu(role.child)
        await asyncio.to_thread(self.group.kill, role.child)

    async def archive_counters(self, role: Role) -> None:
        """Keep the counters of a consumer about to be SIGKILLed: exact from a server's /stats, else its stats file."""
        if role.port is not None:
            snap = await self.get_json(f"{role.child.url}/stats")
            if snap is not None:
                role.counters.append(snap.get("counters", {}))
                role.wires.append(snap.get("wire", {}))
                return
        self._read_stats_file(role)

    async def restart(self, role: Role) -> dict[str, Any]:
        """Start ``role`` again on the same database file (and, for a server, the same port).

        The fault ends when the restart is issued; a server's start-up time is
        reported beside it (``ready_after_s``) and is part of the catch-up.
        """
        name = role.next_name
        role.lifetimes += 1
        issued = time.monotonic()
        if role.port is not None:
            role.child = await asyncio.to_thread(
                self.group.start_server, name, role.role, role.settings, port=role.port, cores=self.cores.cores_for(role.role)
            )
            return {"ready_after_s": time.monotonic() - issued}
        # A worker signals readiness by writing its stats file (its counters were archived already).
        self.stats_path.unlink(missing_ok=True)
        role.child = self.group.start_worker(name, role.role, role.settings, cores=self.cores.cores_for(role.role))
        return {}

    def _read_stats_file(self, role: Role) -> None:
        try:
            snap = json.loads((role.stats_path or self.stats_path).read_text())
        except (OSError, json.JSONDecodeError):
            return
        role.counters.append(snap.get("counters", {}))
        role.wires.append(snap.get("wire", {}))

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> StyleRun:
        """Run this style to the end (blocking; starts its own event loop)."""
        return asyncio.run(self.arun())

    async def arun(self) -> StyleRun:
        """Run this style to the end from a running event loop."""
        with ProcessGroup(self.dir) as group:
            self.group = group
            try:
                await self._main()
            finally:
                await self.fault.close()
                for proxy in self.proxies:
                    await asyncio.to_thread(proxy.stop)
        raise_if_cancelled()
        return self._result()

    async def _main(self) -> None:
        ps = provider_settings(self.settings, self.provider_db, [self.consumer_key, self.publisher_key], self.style)
        if self.consumer_keys:
            ps["key_scopes"] = self.audience.key_scopes(self.consumer_keys)
        if self.certs is not None:
            ps["ca_file"] = str(self.certs.ca_file)  # the dispatcher verifies HTTPS receivers against the lab CA
        self.fault.tune("provider", ps, self)
        self.provider = await self.start("provider", "provider", ps, server=True)
        rss_base = self.provider.child.rss_bytes() or None
        async with httpx.AsyncClient(timeout=CONTROL_TIMEOUT_S * 5, verify=self.verify) as control:
            self.control = control
            self.consumer = await self.style.start_consumer(self)
            self.cpu_start = (_cpu(self.provider.child), self._consumer_side(_cpu))
            self.cpu_window = (time.monotonic(), 0.0)
            self.cpu_wait = (_wait(self.provider.child), self._consumer_side(_wait))
            self.t0 = time.monotonic() + START_DELAY_S
            self.t0_ns = time.time_ns() + int(START_DELAY_S * 1e9)
            injector = asyncio.create_task(self.fault.during(self))
            bracket = asyncio.create_task(self._bracket())
            try:
                await self._publish()
                self.publish_end_ns = time.time_ns()
                await injector
                await bracket
            finally:
                for task in (injector, bracket):
                    task.cancel()
            if self.publish_errors and not self.published_by_publisher:
                raise RunError(
                    f"{self.style.name}: the provider accepted none of {len(self.workload)} events: {self.provider.child.log_tail()}"
                )
            self.fault.after_publish(self)
            await self._drain()
            self.provider_stats = await self.get_json(f"{self.provider.child.url}/stats", auth=True) or {}
            self.provider_rss = (self.provider.child.rss_bytes() or None, rss_base)
            self.cpu_window = (self.cpu_window[0], time.monotonic())
            self.cpu_wait = (_wait(self.provider.child) - self.cpu_wait[0], self._consumer_side(_wait) - self.cpu_wait[1])
            self.provider.cpu_s += _cpu(self.provider.child)
            # Nothing below asks a server anything, and an idle keep-alive connection of this client would hold each
            # TLS server's stop for uvicorn's whole graceful timeout (5 s): the server's close_notify waits for an
            # answer this client never reads.
            await control.aclose()
            await self.stop_consumer()
            for companion in self.companions:
                companion.cpu_s += _cpu(companion.child)
                await asyncio.to_thread(self.group.stop, companion.child)
                self._read_stats_file(companion)
            await asyncio.to_thread(self.group.stop, self.provider.child)

    def _consumer_side(self, read: Callable[[Child], float]) -> float:
        """``read`` (CPU or CPU wait) of the consumer process and its companions together."""
        return read(self.consumer.child) + sum(read(c.child) for c in self.companions)

    async def _bracket(self) -> None:
        """The consumer's counters over the workload window, across restarts of the consumer."""
        await self.until(0.0)
        start = await self.style.counters_now(self)
        archived = len(self.consumer.counters)
        await self.until(self.workload.settings.duration_s)
        end = measures.merge_counters([*self.consumer.counters[archived:], await self.style.counters_now(self)])
        if start or end:
            self.window = {k: int(end.get(k, 0) or 0) - int(start.get(k, 0) or 0) for k in self.style.window_counters}
            self.window_by_consumer = measures.by_consumer_window(start, end)

    async def _publish(self) -> None:
        """Publish every event at its intended time; lateness is from that time to the request's issue (a slot free)."""
        wl = self.workload
        total = len(wl)
        done = 0
        event_type = wl.settings.event_type
        plan = self.audience
        give_up_s = self.fault.publish_give_up_s
        headers = {"authorization": f"Bearer {self.publisher_key}", "content-type": "application/json"}
        # labkit's own HTTP/1.1 client core, as the poller fleet and the dispatcher use: tens of us per request where
        # httpx costs about 1 ms (labkit.wire.httpclient), which at 1,000 events/s is most of a core in this process
        client = HttpClient(WireCounter(), concurrency=PUBLISH_CONNECTIONS, timeout=PUBLISH_TIMEOUT_S, verify=self.verify)
        async with client:
            slots = asyncio.Semaphore(PUBLISH_CONNECTIONS)

            async def one(i: int, off: float) -> None:
                nonlocal done
                event: dict[str, Any] = {"type": plan.event_type(i, event_type), "payload": wl.payloads[i]}
                owner = plan.event_consumer(i)
                if owner is not None:
                    event["consumer"] = owner
                body = orjson.dumps(event)
                give_up = time.monotonic() + give_up_s
                first = True
                while True:
                    try:
                        async with slots:  # one slot per attempt: a retry waits its turn behind the timetable's events
                            if first:  # issued now: the lateness includes any wait for a slot
                                record_us(self.lateness, (time.monotonic() - (self.t0 + off)) * 1e6)
                                first = False
                            # The provider's URL is read each time: it keeps its port across restarts.
                            resp = await client.post(f"{self.provider.child.url}/events", content=body, headers=headers)
                        if resp.status_code == 201:
                            self.published_by_publisher += 1
                            break
                        if resp.status_code < 500 and resp.status_code != 429:
                            self.publish_errors += 1
                            break
                    except (WireError, OSError):
                        pass
                    if time.monotonic() >= give_up:
                        self.publish_errors += 1
                        break
                    self.publish_retries += 1
                    await asyncio.sleep(PUBLISH_RETRY_S)
                done += 1

            tasks = []
            for i, off in enumerate(wl.offsets_s):
                await self.until(off)
                tasks.append(asyncio.create_task(one(i, off)))
                if i % 16 == 0:
                    self.progress(f"{self.label}: publishing", done, total)
            await asyncio.gather(*tasks)
        self.progress(f"{self.label}: publishing", total, total)

    async def _drain(self) -> None:
        """Wait until every consumer holds every committed event, nothing more can come, or the timeout passes."""
        created = Store.events_created_at(str(self.provider_db))
        expected = len(created)
        want = self._wanted()
        total = expected * len(self.consumers) if want is None else sum(want.values())
        last_id = max(created) if created and self.style.drains_to_last(self.settings) else None
        start = time.monotonic()
        while True:
            if last_id is not None:
                seen = records.latest_seen(str(self.consumer_db))
                got = expected * sum(1 for c in self.consumers if seen.get(c, 0) >= last_id)
            else:
                counts = records.received_counts(str(self.consumer_db))
                got = sum(min(counts.get(c, 0), expected if want is None else want.get(c, 0)) for c in self.consumers)
            self.progress(f"{self.label}: draining", got, total)
            if got >= total or self.style.settled(self):
                self.drained = got >= total or not self.fault.promises_no_loss
                break
            if time.monotonic() - start > self.settings.drain_timeout_s:
                break
            for role in (self.provider, self.consumer, *self.companions):
                if not role.child.alive():
                    raise ServerError(f"{role.child.name} died during the run: {role.child.log_tail()}")
            await asyncio.sleep(0.05)
        self.drain_s = time.monotonic() - start

    def _expected(self) -> dict[str, set[int]] | None:
        """Consumer -> the logged event ids it should receive; None for a broadcast (every consumer every event)."""
        return None if self.audience.broadcast else self.audience.expected(Store.events_routing_at(str(self.provider_db)))

    def _wanted(self) -> dict[str, int] | None:
        expected = self._expected()
        return None if expected is None else {c: len(ids) for c, ids in expected.items()}

    # -- results ------------------------------------------------------------------------------------

    def _result(self) -> StyleRun:
        created = Store.events_created_at(str(self.provider_db))
        received = measures.first_received(records.load_events(str(self.consumer_db)))
        # the consumer side as a whole: the consumer process and its companions (each also kept on its own below)
        counters = measures.merge_counters([*self.consumer.counters, *(c for r in self.companions for c in r.counters)])
        wire = measures.merge_counters([*self.consumer.wires, *(w for r in self.companions for w in r.wires)])
        name = self.style.name
        events = [
            (name, consumer, event_id, created[event_id], got)
            for (consumer, event_id), got in sorted(received.items())
            if event_id in created
        ]
        deliveries, rtt = self.style.provider_side(self.provider_db)
        expected = self._expected()
        return StyleRun(
            style=name,
            published_ids=sorted(created),
            publish_errors=self.publish_errors,
            publish_lateness_ms=histogram_summary_ms(self.lateness),
            consumers=self.consumers,
            drained=self.drained,
            drain_s=self.drain_s,
            provider_cpu_s=self.provider.cpu_s,
            consumer_cpu_s=self.consumer.cpu_s + sum(c.cpu_s for c in self.companions),
            consumer_stats={"counters": counters, "wire": wire},
            deliveries=deliveries,
            delivery_rtt_s=rtt,
            events=events,
            provider_cpu_start_s=self.cpu_start[0],
            consumer_cpu_start_s=self.cpu_start[1],
            fault=(
                fault_block(self, self.fault, self.publish_retries, created, received, counters, deliveries, expected)
                if self.settings.fault is not None
                else None
            ),
            window_counters=self.window,
            provider_stats=self.provider_stats,
            provider_rss_bytes=self.provider_rss[0],
            provider_rss_base_bytes=self.provider_rss[1],
            network=network_block(self.proxies),
            cpu_window_s=max(self.cpu_window[1] - self.cpu_window[0], 0.0),
            cpu_wait_s=(max(self.cpu_wait[0], 0.0), max(self.cpu_wait[1], 0.0)),
            cores=self.cores.describe(),
            expected=None if expected is None else {c: len(ids) for c, ids in expected.items()},
            misdelivered=measures.misdelivered(received, created, expected),
            duplicates_by_consumer=measures.duplicates(records.load_repeats(str(self.consumer_db)), created, self.consumers, expected),
            audience=self.audience.describe(),
            shares=self.audience.shares(),
            window_by_consumer=self.window_by_consumer,
            companions={
                c.name: {"counters": measures.merge_counters(c.counters), "wire": measures.merge_counters(c.wires), "cpu_s": c.cpu_s}
                for c in self.companions
            },
        )
