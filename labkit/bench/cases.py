"""The provider measurements of ``labkit bench`` and the plumbing every benchmark shares.

The poll endpoint, the dispatcher and the latency floor live here; the consumer
benchmarks are in ``labkit.bench.consumer_cases``, the proxy and stream ones in
their own modules. Each is a labkit part against the same machine's limit.

Every function here starts what it needs in the run's ``ProcessGroup`` (real
uvicorn processes on 127.0.0.1, as in ``labkit compare``), measures both sides
of its ratio in the same run, alternating, and returns plain data. Every loop
is bounded in count and time. ``labkit.bench.suite`` turns the results into
ratios, targets and the JSON file.
"""

from __future__ import annotations

import asyncio
import base64
import math
import random
import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import orjson

from labkit.bench.load import HttpRequest, LoadResult, LoadTool
from labkit.config import DEFAULT_API_KEY
from labkit.consumers import records
from labkit.errors import RunError
from labkit.lab.workload import make_payload
from labkit.provider.delivery import DeliveryClient
from labkit.provider.dispatcher import USER_AGENT, webhook_body
from labkit.provider.store import Store
from labkit.servers.procs import Child, ProcessGroup
from labkit.wire.metering import (
    WireCounter,
    histogram_summary_ms,
    new_histogram,
    record_us,
)
from labkit.wire.signing import Signer, consumer_key, new_secret

EVENT_TYPE = "order.updated"
AUTH = ("authorization", f"Bearer {DEFAULT_API_KEY}")
DRAIN_TIMEOUT_S = 60.0
DISPATCH_CONCURRENCY = 64  # the provider's default; wrk gets as many connections for the ceiling
# What the dispatcher's client sends before a webhook's own headers (labkit.provider.delivery).
_DELIVERY_HEADERS = (("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate, br"), ("Connection", "keep-alive"))

Progress = Callable[[str, int, int], None]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Plan:
    """How long and how hard each benchmark runs; ``plan()`` builds the standard ones."""

    mode: str
    reps: int
    seconds: float  # one closed-loop segment
    connections: int
    page_events: int
    payload_bytes: int
    dispatch_events: int
    latency_rate: float
    latency_seconds: float
    fleet_steps: tuple[int, ...]
    fleet_interval_s: float
    fleet_seconds: float
    ingest_max_rps: int  # sizes the pre-signed requests: a rep never needs more distinct ones


def plan(quick: bool = False, tiny: bool = False) -> Plan:
    """Full, quick (about five minutes here), or tiny (the test suite's smoke run; numbers mean nothing)."""
    if tiny:
        return Plan("tiny", 1, 1.0, 16, 5, 256, 100, 50.0, 1.5, (100,), 1.0, 3.0, 6000)
    if quick:
        return Plan("quick", 3, 2.0, 64, 10, 256, 10000, 50.0, 8.0, (5000,), 5.0, 20.0, 8000)
    return Plan("full", 5, 5.0, 64, 10, 256, 30000, 50.0, 30.0, (5000, 7500, 10000, 15000), 5.0, 30.0, 8000)


# -- small helpers ------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else None


def cv(values: list[float]) -> float | None:
    """Coefficient of variation (stdev / mean) of repetitions: how noisy a series was."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if len(vals) < 2 or statistics.mean(vals) == 0:
        return None
    return statistics.stdev(vals) / statistics.mean(vals)


def median_interval(values: list[float], level: float = 0.95) -> list[float] | None:
    """A distribution-free interval of the median: the order statistics the sign test puts around it.

    With ``n`` values, the median lies between the k-th smallest and the k-th
    largest with probability ``1 - 2 P(Binomial(n, 1/2) < k)``; k is the largest
    that keeps that at ``level`` or more. None below 6 values (no such k at 95 %).
    """
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    n = len(vals)
    k, below = 0, 0.0
    while True:
        below_next = below + math.comb(n, k) / 2**n  # P(Binomial(n, 1/2) <= k)
        if 1 - 2 * below_next < level:
            break
        below, k = below_next, k + 1
    if k == 0:
        return None
    return [vals[k - 1], vals[n - k]]


def paired_ratio(a: list[float], b: list[float]) -> float | None:
    """Median of the per-repetition ratios a_i / b_i: each pair ran back to back, so drift cancels."""
    return median([x / y for x, y in zip(a, b) if y])


def series(results: list[LoadResult]) -> dict[str, Any]:
    rps = [r.ok_rps for r in results]
    return {
        "rps": median(rps),
        "samples_rps": [round(v, 1) for v in rps],
        "cv": cv(rps),
        "latency_p50_ms": median([r.latency_us.get("p50", math.nan) / 1000 for r in results]),
        "latency_p99_ms": median([r.latency_us.get("p99", math.nan) / 1000 for r in results]),
        "errors": sum(r.errors_status + r.errors_socket for r in results),
        "requests": sum(r.requests for r in results),
    }


def seed_events(db_path: Path, count: int, payload_bytes: int, seed: int = 7) -> list[tuple[int, str, int, bytes]]:
    """Write ``count`` events straight into a provider database (before its provider starts)."""
    rng = random.Random(seed)
    store = Store(str(db_path))
    try:
        for i in range(count):
            store.publish(EVENT_TYPE, orjson.dumps(make_payload(i, payload_bytes, rng)))
        return store.page(0, count)
    finally:
        store.close()


def provider_settings(db_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "db_path": str(db_path),
        "api_keys": [DEFAULT_API_KEY],
        "rate_limit_per_s": 0,
        "allowed_callback_hosts": ["127.0.0.1"],
        "time_scale": 0.001,
        "seed": 1,
        **extra,
    }


class Lab:
    """What every benchmark shares: the process group, the work directory, the load tool."""

    def __init__(self, group: ProcessGroup, work_dir: Path, tool: LoadTool, progress: Progress) -> None:
        self.group = group
        self.work_dir = work_dir
        self.tool = tool
        self.progress = progress
        self._bare_receiver: Child | None = None

    def bare_receiver(self) -> Child:
        if self._bare_receiver is None or not self._bare_receiver.alive():
            self._bare_receiver = self.group.start_server("bare-receiver", "bare", {})
        return self._bare_receiver

    def client(self, base_url: str) -> httpx.Client:
        return httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=30.0)

    def load(self, child: Child, requests: list[HttpRequest], plan: Plan, connections: int | None = None) -> LoadResult:
        """One closed-loop segment against ``child``; a failure names the server and, if it died, how it ended."""
        try:
            return self.tool.run(child.url, requests, connections=connections or plan.connections, duration_s=plan.seconds)
        except RunError as e:
            if child.alive():
                raise RunError(f"load on {child.name} ({child.url}): {e}") from e
            code = child.popen.returncode
            raise RunError(f"{child.name} exited (code {code}) under load: {child.log_tail() or 'its log is empty'}") from e

    def alternate(
        self,
        plan: Plan,
        servers: Mapping[K, Child],
        requests: Callable[[int], Mapping[K, list[HttpRequest]]],
        label: str,
        done: int = 0,
        steps: int | None = None,
    ) -> Segments[K]:
        """``plan.reps`` closed-loop segments against each server, alternating (ABBA), so drift cancels in a paired ratio.

        ``requests(rep)`` gives each server its requests for repetition ``rep``
        (asked once a repetition, so both sides can get the same freshly signed
        ones). The servers' order is the first repetition's; every other one
        runs them reversed. Progress counts on from ``done`` of ``steps``
        (default: this call's segments).
        """
        out: Segments[K] = Segments({key: [] for key in servers}, {key: [] for key in servers})
        steps = plan.reps * len(servers) if steps is None else steps
        for rep in range(plan.reps):
            reqs = requests(rep)
            order = list(servers) if rep % 2 == 0 else list(servers)[::-1]
            for key in order:
                child = servers[key]
                cpu0, t0 = child.cpu_s(), time.monotonic()
                out.results[key].append(self.load(child, reqs[key], plan))
                share = cpu_share(child, cpu0, time.monotonic() - t0)
                out.cpu[key].append(math.nan if share is None else share)
                done += 1
                self.progress(label, done, steps)
        return out


@dataclass
class Segments(Generic[K]):
    """What ``Lab.alternate`` measured: each server's segments in order, and its CPU share in each (NaN when unknown)."""

    results: dict[K, list[LoadResult]]
    cpu: dict[K, list[float]]

    def ok_rps(self, key: K) -> list[float]:
        return [r.ok_rps for r in self.results[key]]

    def series(self, key: K) -> dict[str, Any]:
        """The server's ``series`` with the median CPU share it used (``server_cpu_share``)."""
        return {**series(self.results[key]), "server_cpu_share": median(self.cpu[key])}


def cpu_share(child: Child, cpu0: float, wall_s: float) -> float | None:
    used = child.cpu_s() - cpu0
    return used / wall_s if wall_s > 0 and math.isfinite(used) else None


# -- 1. the poll endpoint ----------------------------------------------------------------


def _capture(url: str, request: HttpRequest) -> dict[str, Any]:
    with httpx.Client(timeout=10.0) as c:
        r = c.request(request.method, url + request.path, headers=dict(request.headers), content=request.body or None)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers.raw]
    return {"status": r.status_code, "headers": headers, "body_b64": base64.b64encode(r.content).decode(), "body_bytes": len(r.content)}


PER_KEY_CONSUMERS = 64  # the 304 path with per-key feeds: this many consumers' keys, cycled
KEY_SECRET = "bench-poll-consumer-key-secret-01"  # a benchmark's throw-away secret: loopback only, no data


def poll_endpoint(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Provider ``GET /events`` (304, a 200 page, and the 304 of per-key feeds) against a bare endpoint sending the same bytes.

    The per-key case (``status_304_per_key``) is a provider of an audience
    per consumer: each request carries its own consumer's key (made from the
    provider's consumer-key secret) and that consumer's ETag, so the provider
    looks the key up, finds its scope and answers from that consumer's own
    head, as ``labkit compare --audience per-consumer`` polls it.
    """
    page = plan.page_events
    db = lab.work_dir / "poll-provider.db"
    seed_events(db, page * 2, plan.payload_bytes)
    head = page * 2
    provider = lab.group.start_server("poll-provider", "provider", provider_settings(db))
    keyed_db = lab.work_dir / "poll-per-key-provider.db"
    heads = seed_owned_events(keyed_db, PER_KEY_CONSUMERS, plan.payload_bytes)
    keyed = lab.group.start_server("poll-per-key-provider", "provider", provider_settings(keyed_db, consumer_key_secret=KEY_SECRET))
    requests = {
        "304": [HttpRequest("GET", f"/events?after={head}", (AUTH, ("if-none-match", f'"h{head}"')))],
        "200": [HttpRequest("GET", f"/events?after={head - page}&limit={page}", (AUTH,))],
        "304_per_key": [
            HttpRequest(
                "GET",
                f"/events?after={h}",
                (("authorization", f"Bearer {consumer_key(KEY_SECRET, c)}"), ("if-none-match", f'"h{h}"')),
            )
            for c, h in heads.items()
        ],
    }
    servers = {"304": provider, "200": provider, "304_per_key": keyed}
    captured = {k: _capture(servers[k].url, rs[0]) for k, rs in requests.items()}
    for k, cap in captured.items():
        if cap["status"] != int(k[:3]):
            raise RunError(f"poll benchmark: the provider answered {cap['status']} where {k[:3]} was expected")
    for r in requests["304_per_key"][1:]:  # every consumer's key and ETag, not only the first's
        if (status := _capture(keyed.url, r)["status"]) != 304:
            raise RunError(f"poll benchmark: the per-key feed answered {status} where 304 was expected")
    bare = lab.group.start_server("poll-bare", "bare", {"responses": {f"/r{k}": cap for k, cap in captured.items()}})
    bare_requests = {k: [HttpRequest("GET", f"/r{k}", r.headers) for r in rs] for k, rs in requests.items()}
    for k, rs in bare_requests.items():
        if _capture(bare.url, rs[0])["status"] != int(k[:3]):
            raise RunError(f"poll benchmark: the bare endpoint did not answer {k[:3]}")
    out: dict[str, Any] = {}
    progress = (0, plan.reps * 2 * len(requests))
    for k in requests:
        out[f"status_{k}"], progress = _alternate(lab, plan, (servers[k], requests[k]), (bare, bare_requests[k]), progress)
        out[f"status_{k}"].update(response_body_bytes=captured[k]["body_bytes"], request=f"GET {requests[k][0].path}")
    out["status_304_per_key"]["consumers"] = len(heads)
    for child in (bare, provider, keyed):
        lab.group.stop(child)
    return out


def seed_owned_events(db_path: Path, consumers: int, payload_bytes: int, seed: int = 7) -> dict[str, int]:
    """Two events of each of ``consumers`` consumers (``c0``, ``c1``, ...), interleaved; each consumer's head."""
    rng = random.Random(seed)
    heads: dict[str, int] = {}
    with Store(str(db_path)) as store:
        for i in range(consumers * 2):
            name = f"c{i % consumers}"
            heads[name], _ = store.publish(EVENT_TYPE, orjson.dumps(make_payload(i, payload_bytes, rng)), consumer=name)
    return heads


def _alternate(
    lab: Lab, plan: Plan, provider: tuple[Child, list[HttpRequest]], bare: tuple[Child, list[HttpRequest]], progress: tuple[int, int]
) -> tuple[dict[str, Any], tuple[int, int]]:
    """``plan.reps`` closed-loop segments on each side, alternating: both series, the paired ratio, and the progress after."""
    done, steps = progress
    requests = {"provider": provider[1], "bare": bare[1]}
    seg = lab.alternate(plan, {"provider": provider[0], "bare": bare[0]}, lambda rep: requests, "bench: poll endpoint", done, steps)
    ratio = paired_ratio(seg.ok_rps("provider"), seg.ok_rps("bare"))
    return {"provider": seg.series("provider"), "bare": seg.series("bare"), "ratio": ratio}, (done + 2 * plan.reps, steps)


# -- 2. the dispatcher -------------------------------------------------------------------


def signed_request(
    path: str, secret: str | Signer, msg_id: str, row: tuple[int, str, int, bytes], timestamp: int | None = None
) -> HttpRequest:
    """A webhook exactly as the dispatcher sends it (its client's fixed headers included)."""
    body = webhook_body([row], batch=False, thin=False)
    signer = secret if isinstance(secret, Signer) else Signer([secret])
    headers = signer.headers(msg_id, body, timestamp)
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
    return HttpRequest("POST", path, (*_DELIVERY_HEADERS, *headers.items()), body)


def _drain(lab: Lab, provider: Child, db: Path, sub_id: str, events: int) -> dict[str, Any]:
    """Queue ``events`` deliveries at once (a replay) and time the dispatcher from first to last."""
    with Store(str(db), readonly=True) as store:
        before = store.last_delivery_id()
    cpu0, wait0 = provider.cpu_s(), provider.wait_s()
    with lab.client(provider.url) as c:
        delivered0 = c.get("/stats").json()["dispatcher"].get("delivered", 0)
        r = c.post(f"/subscriptions/{sub_id}/replay", json={"after": "0"})
        if r.status_code != 202 or r.json().get("queued") != events:
            raise RunError(f"dispatcher benchmark: replay answered {r.status_code} {r.text[:200]}")
        t0 = time.monotonic()
        deadline = t0 + max(DRAIN_TIMEOUT_S, events / 100)
        while True:
            d = c.get("/stats").json()["dispatcher"]
            if d.get("delivered", 0) - delivered0 >= events:
                break
            if time.monotonic() > deadline:
                raise RunError(
                    f"dispatcher benchmark: {d.get('delivered', 0) - delivered0} of {events} delivered within {deadline - t0:.0f} s"
                )
            time.sleep(0.02)
    cpu, waited = provider.cpu_s() - cpu0, provider.wait_s() - wait0
    with Store(str(db), readonly=True) as store:
        outcomes = store.attempt_outcomes(before)
    n = len(outcomes)
    ok = sum(1 for _, _, status in outcomes if status is not None and 200 <= status <= 299)
    first = min((started for started, _, _ in outcomes), default=0)
    last = max((finished for _, finished, _ in outcomes), default=0)
    durations = [finished - started for started, finished, _ in outcomes]
    span = (last - first) / 1e9 if n else math.nan
    hist = new_histogram()
    for d_ns in durations:
        record_us(hist, d_ns / 1000)
    return {
        "deliveries": int(ok or 0),
        "attempts": int(n),
        "span_s": span,
        "per_s": (ok or 0) / span if span > 0 else math.nan,
        "provider_cpu_share": cpu / span if span > 0 else None,
        # the share of the drain the provider was runnable but waiting for a CPU: high means the machine, not the code, set the rate
        "provider_wait_share": waited / span if span > 0 and math.isfinite(waited) else None,
        "attempt_ms": histogram_summary_ms(hist),
    }


def dispatcher(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Deliveries per second from a backlog, against the bare receiver's ceiling under wrk."""
    receiver = lab.bare_receiver()
    db = lab.work_dir / "dispatch-provider.db"
    rows = seed_events(db, plan.dispatch_events, plan.payload_bytes)
    concurrency = DISPATCH_CONCURRENCY
    provider = lab.group.start_server("dispatch-provider", "provider", provider_settings(db, dispatch_concurrency=concurrency))
    secret = new_secret()
    with lab.client(provider.url) as c:
        r = c.post("/subscriptions", json={"url": f"{receiver.url}/webhook", "secret": secret})
        if r.status_code != 201:
            raise RunError(f"dispatcher benchmark: cannot subscribe: {r.status_code} {r.text[:200]}")
        sub_id = r.json()["id"]
    signed = signed_request("/webhook", secret, f"msg_{rows[0][0]}", rows[0])
    drains: list[dict[str, Any]] = []
    ceilings: list[LoadResult] = []
    recv_cpu: list[float] = []
    recv_wait: dict[str, list[float]] = {"drain": [], "ceiling": []}
    steps, done = plan.reps * 2, 0
    for rep in range(plan.reps):
        for which in ("ceiling", "drain") if rep % 2 == 0 else ("drain", "ceiling"):
            cpu0, wait0, t0 = receiver.cpu_s(), receiver.wait_s(), time.monotonic()
            if which == "ceiling":
                ceilings.append(lab.load(receiver, [signed], plan, connections=concurrency))
            else:
                drains.append(_drain(lab, provider, db, sub_id, plan.dispatch_events))
                share = cpu_share(receiver, cpu0, time.monotonic() - t0)
                if share is not None:
                    recv_cpu.append(share)
            recv_wait[which].append((receiver.wait_s() - wait0) / max(time.monotonic() - t0, 1e-9))
            done += 1
            lab.progress("bench: dispatcher", done, steps)
    lab.group.stop(provider)
    rates = [d["per_s"] for d in drains]
    return {
        "events": plan.dispatch_events,
        "concurrency": concurrency,
        "deliveries_per_s": median(rates),
        "samples_per_s": [round(v, 1) for v in rates],
        "cv": cv(rates),
        "provider_cpu_share": median([d["provider_cpu_share"] for d in drains]),
        "receiver_cpu_share": median(recv_cpu),
        # per repetition, the share of its time each process was runnable but waited for a CPU (other work on the machine):
        # the drain needs two busy processes (provider, receiver) where the ceiling needs one (the receiver, against wrk)
        "provider_wait_shares": [d.get("provider_wait_share") for d in drains],
        "receiver_wait_shares": {k: [round(v, 3) for v in vals if math.isfinite(v)] for k, vals in recv_wait.items()},
        "ratios": [round(d / c.ok_rps, 3) for d, c in zip(rates, ceilings) if c.ok_rps],
        "attempt_ms": drains[len(drains) // 2]["attempt_ms"] if drains else None,
        "ceiling": series(ceilings),
        "ratio": paired_ratio(rates, [r.ok_rps for r in ceilings]),
    }


# -- 3. the latency floor ----------------------------------------------------------------


async def _timetable(
    provider_url: str, bare_url: str, signed: HttpRequest, rate: float, seconds: float, warmup_s: float, payload_bytes: int = 256
) -> dict[str, Any]:
    """Publish at ``rate`` (open loop) and, half a period later each time, one bare round trip."""
    wire = WireCounter()
    # A lean publisher: on this small machine the kernel often runs the process a response wakes on
    # the writer's CPU, so a heavy client (httpx, ~0.5 ms per response) would delay the provider's
    # dispatcher by its own work and the figure would measure the harness.
    publisher = DeliveryClient(wire, concurrency=16, timeout=10.0, allowed_hosts=("127.0.0.1",))
    publish_headers = {"authorization": f"Bearer {DEFAULT_API_KEY}", "content-type": "application/json"}
    # The dispatcher's own HTTP client, kept alive: the floor a delivery cannot go below.
    bare = DeliveryClient(wire, concurrency=4, timeout=10.0, allowed_hosts=("127.0.0.1",))
    loop = asyncio.get_running_loop()
    rtts_us: list[float] = []
    measured_ids: list[int] = []
    errors = 0
    period = 1.0 / rate
    total = int((seconds + warmup_s) * rate)
    warm = int(warmup_s * rate)
    rng = random.Random(3)

    async def publish(k: int) -> None:
        nonlocal errors
        body = orjson.dumps({"type": EVENT_TYPE, "payload": make_payload(k, payload_bytes, rng)})
        try:
            r = await publisher.post(provider_url + "/events", content=body, headers=publish_headers)
            if r.status_code != 201:
                errors += 1
            elif k >= warm:
                measured_ids.append(int(orjson.loads(r.content)["id"]))
        except httpx.HTTPError:
            errors += 1

    headers = dict(signed.headers[len(_DELIVERY_HEADERS) :])  # the client adds its own

    async def bare_rtts() -> None:
        nonlocal errors
        for k in range(total):
            delay = t0 + (k + 0.5) * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            start = time.perf_counter()
            try:
                await bare.post(bare_url + signed.path, content=signed.body, headers=headers)
            except httpx.HTTPError:
                errors += 1
                continue
            if k >= warm:
                rtts_us.append((time.perf_counter() - start) * 1e6)

    t0 = loop.time() + 0.1
    tasks: list[asyncio.Task[None]] = []
    side = asyncio.create_task(bare_rtts())
    for k in range(total):
        delay = t0 + k * period - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(publish(k)))
    await asyncio.gather(*tasks, side)
    await publisher.aclose()
    await bare.aclose()
    return {"rtts_us": rtts_us, "ids": measured_ids, "errors": errors}


def _summary_us(values_us: list[float]) -> dict[str, float | None]:
    hist = new_histogram()
    for v in values_us:
        record_us(hist, v)
    return histogram_summary_ms(hist)


def latency_floor(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Webhook end to end (created in the provider -> recorded by the receiver) against a bare round trip."""
    bare = lab.bare_receiver()
    db = lab.work_dir / "latency-provider.db"
    rdb = lab.work_dir / "latency-receiver.db"
    provider = lab.group.start_server("latency-provider", "provider", provider_settings(db))
    secret = new_secret()
    receiver = lab.group.start_server(
        "latency-receiver",
        "receiver",
        {"secrets": [secret], "db_path": str(rdb), "stats_path": str(lab.work_dir / "latency-receiver.stats.json")},
    )
    with lab.client(provider.url) as c:
        r = c.post("/subscriptions", json={"url": f"{receiver.url}/webhook/s0", "secret": secret})
        if r.status_code != 201:
            raise RunError(f"latency benchmark: cannot subscribe: {r.status_code} {r.text[:200]}")
    row = (1, EVENT_TYPE, time.time_ns(), orjson.dumps(make_payload(0, plan.payload_bytes, random.Random(1))))
    signed = signed_request("/webhook", secret, "msg_bench", row)
    lab.progress("bench: latency floor", 0, 2)
    warmup_s = 1.0
    got = asyncio.run(_timetable(provider.url, bare.url, signed, plan.latency_rate, plan.latency_seconds, warmup_s, plan.payload_bytes))
    lab.progress("bench: latency floor", 1, 2)
    expected = len(got["ids"]) + int(warmup_s * plan.latency_rate)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while sum(records.received_counts(str(rdb)).values()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    lab.group.stop(receiver)
    lab.group.stop(provider)
    lab.progress("bench: latency floor", 2, 2)
    created = Store.events_created_at(str(db))
    wanted = set(got["ids"])
    e2e_us = [(recv - created[eid]) / 1000 for _, eid, recv in records.load_events(str(rdb)) if eid in wanted]
    received = {eid: recv for _, eid, recv in records.load_events(str(rdb))}
    attempts_us: list[float] = []
    to_dispatch_us: list[float] = []  # created (publish commit) -> the dispatcher starts the POST
    to_record_us: list[float] = []  # the POST starts -> the receiver records the event
    with Store(str(db), readonly=True) as store:
        rows = store.event_attempts(min(wanted) if wanted else 0)
    for eid, started, finished in rows:
        attempts_us.append((finished - started) / 1000)
        if eid in wanted and eid in received:
            to_dispatch_us.append((started - created[eid]) / 1000)
            to_record_us.append((received[eid] - started) / 1000)
    e2e, bare_rtt = _summary_us(e2e_us), _summary_us(got["rtts_us"])

    def ratio(key: str) -> float | None:
        a, b = e2e.get(key), bare_rtt.get(key)
        return a / b if a is not None and b else None

    return {
        "rate_per_s": plan.latency_rate,
        "seconds": plan.latency_seconds,
        "events": len(wanted),
        "delivered": len(e2e_us),
        "errors": got["errors"],
        "webhook_e2e_ms": e2e,
        "attempt_ms": _summary_us(attempts_us),
        "breakdown_ms": {"created_to_dispatch": _summary_us(to_dispatch_us), "dispatch_to_recorded": _summary_us(to_record_us)},
        "bare_rtt_ms": bare_rtt,
        "ratio_p50": ratio("p50"),
        "ratio_p99": ratio("p99"),
    }
