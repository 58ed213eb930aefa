"""The network proxy's own cost: webhook end-to-end p50 through it at zero delay, against direct, as a ratio.

Network profiles put ``labkit.servers.netproxy`` on every consumer <-> provider
hop, so whatever the proxy itself adds is charged to the network. This case
measures it: webhooks to one receiver, direct and through a proxy that adds
nothing (``Impairment()``). Each repetition runs the same timetable twice,
each time against a fresh provider with one subscription, direct then proxied
or the other way round (alternating, so drift in the machine's load cancels in
the paired ratio). Two subscriptions served at once would not do: the second
delivery of every event waits for the first, which dwarfs the proxy's cost.
The proxy runs in a thread of the bench process, as a run's harness would
host it. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import orjson

from labkit.bench.cases import EVENT_TYPE, Lab, Plan, cv, median, paired_ratio, provider_settings
from labkit.config import DEFAULT_API_KEY
from labkit.consumers import records
from labkit.errors import RunError
from labkit.provider.delivery import DeliveryClient
from labkit.provider.store import Store
from labkit.servers.netproxy import Impairment, ProxyThread
from labkit.wire.metering import WireCounter, histogram_summary_ms, new_histogram, record_us
from labkit.wire.signing import new_secret
from labkit.workload import make_payload

DRAIN_TIMEOUT_S = 60.0
WARMUP_S = 1.0
PATHS = ("direct", "proxied")


async def _publish(provider_url: str, rate: float, seconds: float, payload_bytes: int) -> tuple[list[int], int]:
    """Publish on an open-loop timetable at ``rate``; the ids published after the warm-up, and the errors."""
    publisher = DeliveryClient(WireCounter(), concurrency=16, timeout=10.0, allowed_hosts=("127.0.0.1",))
    headers = {"authorization": f"Bearer {DEFAULT_API_KEY}", "content-type": "application/json"}
    loop = asyncio.get_running_loop()
    rng = random.Random(5)
    ids: list[int] = []
    errors = 0
    total, warm = int((seconds + WARMUP_S) * rate), int(WARMUP_S * rate)

    async def one(k: int) -> None:
        nonlocal errors
        body = orjson.dumps({"type": EVENT_TYPE, "payload": make_payload(k, payload_bytes, rng)})
        try:
            r = await publisher.post(provider_url + "/events", content=body, headers=headers)
        except httpx.HTTPError:
            errors += 1
            return
        if r.status_code != 201:
            errors += 1
        elif k >= warm:
            ids.append(int(orjson.loads(r.content)["id"]))

    t0 = loop.time() + 0.1
    tasks = []
    for k in range(total):
        delay = t0 + k / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    await publisher.aclose()
    return ids, errors


def _segment(lab: Lab, plan: Plan, name: str, url: str, rdb: str, secret: str) -> dict[str, Any]:
    """A fresh provider with one subscription at ``url``, one timetable: each event's end-to-end latency."""
    db = lab.work_dir / f"proxy-provider-{name}.db"
    provider = lab.group.start_server(f"proxy-provider-{name}", "provider", provider_settings(db))
    with lab.client(provider.url) as c:
        r = c.post("/subscriptions", json={"url": f"{url}/webhook/{name}", "secret": secret})
        if r.status_code != 201:
            raise RunError(f"proxy benchmark: cannot subscribe: {r.status_code} {r.text[:200]}")
    ids, errors = asyncio.run(_publish(provider.url, plan.latency_rate, plan.latency_seconds, plan.payload_bytes))
    wanted = set(ids)
    expected = len(ids) + int(WARMUP_S * plan.latency_rate)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while records.received_counts(rdb).get(name, 0) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    lab.group.stop(provider)
    created = Store.events_created_at(str(db))
    e2e_us = [(recv - created[eid]) / 1000 for consumer, eid, recv in records.load_events(rdb) if consumer == name and eid in wanted]
    return {"events": len(ids), "errors": errors, "e2e_us": e2e_us}


def _summary(values_us: list[float]) -> dict[str, float | None]:
    hist = new_histogram()
    for v in values_us:
        record_us(hist, v)
    return histogram_summary_ms(hist)


def proxy_cost(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Webhook end-to-end latency through the zero-delay proxy and direct, alternating, paired per repetition."""
    secret = new_secret()
    rdb = str(lab.work_dir / "proxy-receiver.db")
    receiver = lab.group.start_server("proxy-receiver", "receiver", {"secrets": [secret], "db_path": rdb})
    segs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    with ProxyThread("127.0.0.1", receiver.port or 0, Impairment()) as proxy:
        urls = {"direct": receiver.url, "proxied": proxy.url}
        done = 0
        for rep in range(plan.reps):
            for path in PATHS if rep % 2 == 0 else PATHS[::-1]:
                segs[path].append(_segment(lab, plan, f"{path}-{rep}", urls[path], rdb, secret))
                done += 1
                lab.progress("bench: proxy cost", done, 2 * plan.reps)
        proxy_stats = proxy.proxy.stats.snapshot()
    lab.group.stop(receiver)
    p50 = {p: _nums([_summary(s["e2e_us"]).get("p50") for s in segs[p]]) for p in PATHS}
    p99 = {p: _nums([_summary(s["e2e_us"]).get("p99") for s in segs[p]]) for p in PATHS}
    all_us = {p: [v for s in segs[p] for v in s["e2e_us"]] for p in PATHS}
    return {
        "rate_per_s": plan.latency_rate,
        "seconds": plan.latency_seconds,
        "reps": plan.reps,
        "events": {p: sum(s["events"] for s in segs[p]) for p in PATHS},
        "delivered": {p: len(all_us[p]) for p in PATHS},
        "errors": sum(s["errors"] for p in PATHS for s in segs[p]),
        "direct_e2e_ms": _summary(all_us["direct"]),
        "proxied_e2e_ms": _summary(all_us["proxied"]),
        "samples_p50_ms": {p: [round(v, 3) for v in p50[p]] for p in PATHS},
        "added_p50_ms": median([b - a for a, b in zip(p50["direct"], p50["proxied"])]),
        "ratio_p50": paired_ratio(p50["proxied"], p50["direct"]),
        "ratio_p99": paired_ratio(p99["proxied"], p99["direct"]),
        "cv": cv([b / a for a, b in zip(p50["direct"], p50["proxied"]) if a]),
        "proxy": proxy_stats,
        "where": "user-space proxy (labkit.servers.netproxy) in a thread of the bench process, zero delay",
    }


def _nums(values: list[float | None]) -> list[float]:
    """None (no sample) as NaN, which the medians skip."""
    return [v if v is not None else float("nan") for v in values]
