"""The network proxy's own cost: webhook end-to-end p50 through it at zero delay, against direct, as a ratio.

Network profiles put ``labkit.servers.netproxy`` on every consumer <-> provider
hop, so whatever the proxy itself adds is charged to the network. This case
measures it: webhooks to one receiver, direct (one provider, subscribed
straight to the receiver) and through a proxy that adds nothing
(``Impairment()``; a second provider, subscribed through it). The run is cut
into short segments of the same timetable, alternating sides (ABBA), and each
pair's p50s give one ratio; the median of those is the figure. On a shared
machine the load drifts by more than the proxy costs, so only neighbours in
time are compared. Two subscriptions served at once would not do: the second
delivery of every event waits for the first, which dwarfs the proxy's cost.
The proxy runs as the pipeline runs it (``labkit.lab.hop.ProxyProcess``: a
process of its own, uvloop), so the figure is the cost a network run pays, not
that of sharing the bench's interpreter. The proxy has one code path for
every impairment; at zero delay each read is due at once and is written in
the callback that read it (no timer, no queue), the branch every undelayed
chunk of a profile run takes too. Every loop is bounded in count and time.
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
from labkit.lab.hop import ProxyProcess
from labkit.lab.workload import make_payload
from labkit.provider.delivery import DeliveryClient
from labkit.provider.store import Store
from labkit.servers.netproxy import Impairment
from labkit.wire.metering import WireCounter, histogram_summary_ms, new_histogram, record_us
from labkit.wire.signing import new_secret

DRAIN_TIMEOUT_S = 60.0
WARMUP_S = 1.0  # before the first segment of each side only: the providers stay up
SEGMENT_S = 2.0  # short segments, alternating: the drift of a shared machine changes little within a pair, and many pairs outvote a spike
PATHS = ("direct", "proxied")


async def _publish(provider_url: str, rate: float, seconds: float, warmup_s: float, payload_bytes: int) -> tuple[list[int], int]:
    """Publish on an open-loop timetable at ``rate``; the ids published after the warm-up, and the errors."""
    publisher = DeliveryClient(WireCounter(), concurrency=16, timeout=10.0, allowed_hosts=("127.0.0.1",))
    headers = {"authorization": f"Bearer {DEFAULT_API_KEY}", "content-type": "application/json"}
    loop = asyncio.get_running_loop()
    rng = random.Random(5)
    ids: list[int] = []
    errors = 0
    total, warm = int((seconds + warmup_s) * rate), int(warmup_s * rate)

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

    t0 = loop.time() + 0.05
    tasks = []
    for k in range(total):
        delay = t0 + k / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    await publisher.aclose()
    return ids, errors


def _wait_recorded(rdb: str, consumer: str, count: int) -> None:
    """Until the receiver has recorded ``count`` events for ``consumer`` (bounded by DRAIN_TIMEOUT_S)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while records.received_counts(rdb).get(consumer, 0) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _summary(values_us: list[float]) -> dict[str, float | None]:
    hist = new_histogram()
    for v in values_us:
        record_us(hist, v)
    return histogram_summary_ms(hist)


def proxy_cost(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Webhook end-to-end latency through the zero-delay proxy and direct, in alternating short segments, paired."""
    secret = new_secret()
    rdb = str(lab.work_dir / "proxy-receiver.db")
    receiver = lab.group.start_server("proxy-receiver", "receiver", {"secrets": [secret], "db_path": rdb})
    n_seg = plan.reps * max(1, round(plan.latency_seconds / SEGMENT_S))
    seg_s = plan.reps * plan.latency_seconds / n_seg
    seg_ids: dict[str, list[list[int]]] = {p: [] for p in PATHS}
    sent = {p: 0 for p in PATHS}  # published successfully, warm-up included
    errors = 0
    done = 0
    dbs = {p: lab.work_dir / f"proxy-provider-{p}.db" for p in PATHS}
    proxy = ProxyProcess("127.0.0.1", receiver.port or 0, Impairment()).start()
    cpu0 = proxy.cpu_s()
    try:
        urls = {"direct": receiver.url, "proxied": proxy.url}
        providers = {p: lab.group.start_server(f"proxy-provider-{p}", "provider", provider_settings(dbs[p])) for p in PATHS}
        for p in PATHS:
            with lab.client(providers[p].url) as c:
                r = c.post("/subscriptions", json={"url": f"{urls[p]}/webhook/{p}", "secret": secret})
                if r.status_code != 201:
                    raise RunError(f"proxy benchmark: cannot subscribe: {r.status_code} {r.text[:200]}")
        for i in range(n_seg):
            for p in PATHS if i % 2 == 0 else PATHS[::-1]:
                warm = WARMUP_S if i == 0 else 0.0
                ids, errs = asyncio.run(_publish(providers[p].url, plan.latency_rate, seg_s, warm, plan.payload_bytes))
                sent[p] += int((seg_s + warm) * plan.latency_rate) - errs
                errors += errs
                seg_ids[p].append(ids)
                _wait_recorded(rdb, p, sent[p])
                done += 1
                lab.progress("bench: proxy cost", done, 2 * n_seg)
        proxy_cpu_s = _minus(proxy.cpu_s(), cpu0)
        for child in providers.values():
            lab.group.stop(child)
    finally:
        proxy_stats = proxy.stop()
    lab.group.stop(receiver)
    received = {p: {eid: recv for c, eid, recv in records.load_events(rdb) if c == p} for p in PATHS}
    e2e: dict[str, list[list[float]]] = {}
    for p in PATHS:
        created = Store.events_created_at(str(dbs[p]))
        e2e[p] = [[(received[p][e] - created[e]) / 1000 for e in ids if e in received[p]] for ids in seg_ids[p]]
    p50 = {p: _nums([_summary(seg).get("p50") for seg in e2e[p]]) for p in PATHS}
    p99 = {p: _nums([_summary(seg).get("p99") for seg in e2e[p]]) for p in PATHS}
    all_us = {p: [v for seg in e2e[p] for v in seg] for p in PATHS}
    return {
        "rate_per_s": plan.latency_rate,
        "seconds": plan.reps * plan.latency_seconds,
        "segments": n_seg,
        "segment_s": seg_s,
        "events": {p: sum(len(ids) for ids in seg_ids[p]) for p in PATHS},
        "delivered": {p: len(all_us[p]) for p in PATHS},
        "errors": errors,
        "direct_e2e_ms": _summary(all_us["direct"]),
        "proxied_e2e_ms": _summary(all_us["proxied"]),
        "samples_p50_ms": {p: [round(v, 3) for v in p50[p]] for p in PATHS},
        "added_p50_ms": median([b - a for a, b in zip(p50["direct"], p50["proxied"])]),
        "ratio_p50": paired_ratio(p50["proxied"], p50["direct"]),
        "ratio_p99": paired_ratio(p99["proxied"], p99["direct"]),
        "pooled_ratio_p50": _ratio(_summary(all_us["proxied"]).get("p50"), _summary(all_us["direct"]).get("p50")),
        "cv": cv([b / a for a, b in zip(p50["direct"], p50["proxied"]) if a]),
        "proxy": proxy_stats,
        "where": "user-space proxy (labkit.servers.netproxy) in its own process (labkit.lab.hop.ProxyProcess), zero delay",
        "proxy_runs_in": "process",
        "proxy_path": "straight-through",  # zero delay: each read is written on in the callback that read it, no timer or queue
        "proxy_cpu_us_per_event": proxy_cpu_s * 1e6 / len(all_us["proxied"]) if proxy_cpu_s is not None and all_us["proxied"] else None,
    }


def _minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _nums(values: list[float | None]) -> list[float]:
    """None (no sample) as NaN, which the medians skip."""
    return [v if v is not None else float("nan") for v in values]
