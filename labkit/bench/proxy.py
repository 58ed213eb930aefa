"""The network proxy's own cost: webhook end-to-end p50 through it at zero delay, against direct and against the relay floor.

Network profiles put ``labkit.servers.netproxy`` on every consumer <-> provider
hop, so whatever the proxy itself adds is charged to the network. This case
measures it: webhooks to one receiver, direct (one provider, subscribed
straight to the receiver) and through a proxy that adds nothing
(``Impairment()``; a second provider, subscribed through it). The run is cut
into rounds; in each, the paths' events are interleaved on one timetable (a
cycle of one event per path, the order shuffled every cycle), so every path
sees the same machine at the same moments, and each round's p50s give one
ratio; the median of those is the figure, reported with a distribution-free
interval (``median_interval``). On a shared machine the load drifts by more
than the proxy costs: segments of one path after another (as before) let a
busy second land on one path only. The paths' events never overlap (one
event at a time, 20 ms apart at 50/s, against a delivery of about a
millisecond); two subscriptions of one event would not do: the second
delivery of every event waits for the first, which dwarfs the proxy's cost.
The proxy runs as the pipeline runs it (``labkit.lab.hop.ProxyProcess``: a
process of its own, uvloop), so the figure is the cost a network run pays, not
that of sharing the bench's interpreter. The proxy has one code path for
every impairment; at zero delay each read is due at once and is written in
the callback that read it (no timer, no queue), the branch every undelayed
chunk of a profile run takes too. Every loop is bounded in count and time.

What any user-space hop costs on this machine is measured in the same rounds:
a bare epoll relay and, when installed, socat (``labkit.bench.relay``), each
with a provider of its own. The proxy is judged against that floor
(``ratio_to_relay_p50``: each round's proxied p50 over the relay's), not
against the direct path alone, whose ratio is the machine's as much as the
proxy's.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import orjson

from labkit.bench.cases import EVENT_TYPE, Lab, Plan, cv, median, median_interval, paired_ratio, provider_settings
from labkit.bench.relay import BareRelay, SocatRelay
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


async def _publish(
    provider_urls: list[str], rate: float, per_path: int, warm_per_path: int, payload_bytes: int, seed: int
) -> tuple[list[list[int]], list[int]]:
    """One round, interleaved: every path's events on one open-loop timetable at ``rate``, in cycles of one event per path.

    Each cycle takes the paths in a fresh seeded order, so no path always
    follows the same neighbour, and every path sees the same machine at the
    same moments: drift on a shared machine hits all of them alike, and the
    ratio of their p50s is left with the sampling noise alone. Returns, per
    path, the ids published after the warm-up, and the errors.
    """
    publisher = DeliveryClient(WireCounter(), concurrency=16, timeout=10.0, allowed_hosts=("127.0.0.1",))
    headers = {"authorization": f"Bearer {DEFAULT_API_KEY}", "content-type": "application/json"}
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    n = len(provider_urls)
    ids: list[list[int]] = [[] for _ in range(n)]
    errors = [0] * n

    async def one(k: int, path: int, warm: bool) -> None:
        body = orjson.dumps({"type": EVENT_TYPE, "payload": make_payload(k, payload_bytes, rng)})
        try:
            r = await publisher.post(provider_urls[path] + "/events", content=body, headers=headers)
        except httpx.HTTPError:
            errors[path] += 1
            return
        if r.status_code != 201:
            errors[path] += 1
        elif not warm:
            ids[path].append(int(orjson.loads(r.content)["id"]))

    t0 = loop.time() + 0.05
    tasks = []
    k = 0
    for cycle in range(warm_per_path + per_path):
        for path in rng.sample(range(n), n):
            delay = t0 + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k, path, cycle < warm_per_path)))
            k += 1
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


def _hops(receiver_port: int) -> dict[str, Any]:
    """The hops besides the direct path, started: the proxy as runs use it, the bare relay, and socat when installed."""
    hops: dict[str, Any] = {}
    try:
        hops["proxied"] = ProxyProcess("127.0.0.1", receiver_port, Impairment()).start()
        hops["relay"] = BareRelay(receiver_port).start()
        if SocatRelay.installed():
            hops["socat"] = SocatRelay(receiver_port).start()
    except BaseException:
        _stop(hops)
        raise
    return hops


def _stop(hops: dict[str, Any]) -> dict[str, Any]:
    """Stop every hop; the proxy's counters."""
    stats: dict[str, Any] = {}
    for name, hop in hops.items():
        out = hop.stop()
        if name == "proxied":
            stats = out
    return stats


def _segments(
    lab: Lab, plan: Plan, providers: dict[str, Any], rdb: str, n_seg: int, seg_s: float
) -> tuple[dict[str, list[list[int]]], int]:
    """Publish the rounds: in each, ``seg_s`` worth of events per path (at the plan's rate), every path's interleaved on one timetable.

    A round therefore lasts ``len(paths) x seg_s``, and each path sees the
    plan's rate divided by the number of paths.
    """
    paths = list(providers)
    urls = [providers[p].url for p in paths]
    seg_ids: dict[str, list[list[int]]] = {p: [] for p in paths}
    sent = {p: 0 for p in paths}  # published successfully, warm-up included
    per_path = max(1, int(seg_s * plan.latency_rate))
    errors = 0
    for i in range(n_seg):
        warm = int(WARMUP_S * plan.latency_rate) if i == 0 else 0
        ids, errs = asyncio.run(_publish(urls, plan.latency_rate, per_path, warm, plan.payload_bytes, seed=5 + i))
        for j, p in enumerate(paths):
            sent[p] += per_path + warm - errs[j]
            seg_ids[p].append(ids[j])
            _wait_recorded(rdb, p, sent[p])
        errors += sum(errs)
        lab.progress("bench: proxy cost", i + 1, n_seg)
    return seg_ids, errors


def proxy_cost(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Webhook end-to-end latency direct, through the zero-delay proxy and through the simplest relays, in rounds."""
    secret = new_secret()
    rdb = str(lab.work_dir / "proxy-receiver.db")
    receiver = lab.group.start_server("proxy-receiver", "receiver", {"secrets": [secret], "db_path": rdb})
    n_seg = plan.reps * max(1, round(plan.latency_seconds / SEGMENT_S))
    seg_s = plan.reps * plan.latency_seconds / n_seg
    hops = _hops(receiver.port or 0)
    paths = ["direct", *hops]
    dbs = {p: lab.work_dir / f"proxy-provider-{p}.db" for p in paths}
    cpu0 = {p: hop.cpu_s() for p, hop in hops.items()}
    try:
        urls = {"direct": receiver.url, **{p: hop.url for p, hop in hops.items()}}
        providers = {p: lab.group.start_server(f"proxy-provider-{p}", "provider", provider_settings(dbs[p])) for p in paths}
        for p in paths:
            with lab.client(providers[p].url) as c:
                r = c.post("/subscriptions", json={"url": f"{urls[p]}/webhook/{p}", "secret": secret})
                if r.status_code != 201:
                    raise RunError(f"proxy benchmark: cannot subscribe: {r.status_code} {r.text[:200]}")
        seg_ids, errors = _segments(lab, plan, providers, rdb, n_seg, seg_s)
        cpu_s = {p: _minus(hop.cpu_s(), cpu0[p]) for p, hop in hops.items()}
        for child in providers.values():
            lab.group.stop(child)
    finally:
        proxy_stats = _stop(hops)
    lab.group.stop(receiver)
    received = {p: {eid: recv for c, eid, recv in records.load_events(rdb) if c == p} for p in paths}
    e2e: dict[str, list[list[float]]] = {}
    for p in paths:
        created = Store.events_created_at(str(dbs[p]))
        e2e[p] = [[(received[p][e] - created[e]) / 1000 for e in ids if e in received[p]] for ids in seg_ids[p]]
    out = _figures(e2e, seg_ids, cpu_s, plan, n_seg, seg_s, errors)
    out["proxy"] = proxy_stats
    out["relays"] = {p: _relay_figures(p, hops[p], e2e, cpu_s.get(p)) for p in hops if p != "proxied"}
    if "socat" not in out["relays"]:
        out["relays"]["socat"] = {"installed": False}
    return out


def _figures(
    e2e: dict[str, list[list[float]]],
    seg_ids: dict[str, list[list[int]]],
    cpu_s: dict[str, float | None],
    plan: Plan,
    n_seg: int,
    seg_s: float,
    errors: int,
) -> dict[str, Any]:
    """The proxy against direct (as before) and against the relay floor, each from per-round paired p50s."""
    p50 = {p: _nums([_summary(seg).get("p50") for seg in e2e[p]]) for p in e2e}
    p99 = {p: _nums([_summary(seg).get("p99") for seg in e2e[p]]) for p in e2e}
    all_us = {p: [v for seg in e2e[p] for v in seg] for p in e2e}
    proxy_cpu = cpu_s.get("proxied")
    return {
        "rate_per_s": plan.latency_rate,
        "seconds": plan.reps * plan.latency_seconds,
        "segments": n_seg,
        "segment_s": seg_s,
        "paths": list(e2e),
        "events": {p: sum(len(ids) for ids in seg_ids[p]) for p in e2e},
        "delivered": {p: len(all_us[p]) for p in e2e},
        "errors": errors,
        "direct_e2e_ms": _summary(all_us["direct"]),
        "proxied_e2e_ms": _summary(all_us["proxied"]),
        "samples_p50_ms": {p: [round(v, 3) for v in p50[p]] for p in e2e},
        "added_p50_ms": median([b - a for a, b in zip(p50["direct"], p50["proxied"])]),
        "ratio_p50": paired_ratio(p50["proxied"], p50["direct"]),
        "ratio_p99": paired_ratio(p99["proxied"], p99["direct"]),
        "pooled_ratio_p50": _ratio(_summary(all_us["proxied"]).get("p50"), _summary(all_us["direct"]).get("p50")),
        # the proxy against the floor: each round's proxied p50 over the same round's relay p50
        "ratio_to_relay_p50": paired_ratio(p50["proxied"], p50["relay"]),
        "ratio_to_socat_p50": paired_ratio(p50["proxied"], p50["socat"]) if "socat" in p50 else None,
        # how far the judged median could move: every round's ratio, and a distribution-free interval of their median
        "rounds_ratio_to_relay_p50": [round(b / a, 4) for a, b in zip(p50["relay"], p50["proxied"]) if a],
        "ratio_to_relay_p50_interval": median_interval([b / a for a, b in zip(p50["relay"], p50["proxied"]) if a]),
        "ratio_to_socat_p50_interval": median_interval([b / a for a, b in zip(p50["socat"], p50["proxied"]) if a])
        if "socat" in p50
        else None,
        "ratio_p50_interval": median_interval([b / a for a, b in zip(p50["direct"], p50["proxied"]) if a]),
        # every event of the run at once (the paths interleaved, so one machine state): the p50 over the relay's
        "pooled_ratio_to_relay_p50": _ratio(_summary(all_us["proxied"]).get("p50"), _summary(all_us["relay"]).get("p50")),
        "interleaved": True,
        "round_s": seg_s * len(e2e),
        "cv": cv([b / a for a, b in zip(p50["direct"], p50["proxied"]) if a]),
        "where": "user-space proxy (labkit.servers.netproxy) in its own process (labkit.lab.hop.ProxyProcess), zero delay",
        "proxy_runs_in": "process",
        "proxy_path": "straight-through",  # zero delay: each read is written on in the callback that read it, no timer or queue
        "proxy_cpu_us_per_event": proxy_cpu * 1e6 / len(all_us["proxied"]) if proxy_cpu is not None and all_us["proxied"] else None,
    }


def _relay_figures(path: str, hop: Any, e2e: dict[str, list[list[float]]], cpu_s: float | None) -> dict[str, Any]:
    """One relay's figures: its p50 against direct in the same rounds, the p50 it adds, its CPU per event."""
    p50 = {p: _nums([_summary(seg).get("p50") for seg in e2e[p]]) for p in ("direct", path)}
    n = sum(len(seg) for seg in e2e[path])
    return {
        "installed": True,
        "where": hop.where,
        "e2e_ms": _summary([v for seg in e2e[path] for v in seg]),
        "ratio_p50": paired_ratio(p50[path], p50["direct"]),
        "added_p50_ms": median([b - a for a, b in zip(p50["direct"], p50[path])]),
        "cpu_us_per_event": cpu_s * 1e6 / n if cpu_s is not None and n else None,
    }


def _minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _nums(values: list[float | None]) -> list[float]:
    """None (no sample) as NaN, which the medians skip."""
    return [v if v is not None else float("nan") for v in values]
