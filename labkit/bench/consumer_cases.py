"""The consumer benchmarks: the poller fleet (pollers per process) and the receiver's ingest.

They share the plan, the lab and the provider plumbing of ``labkit.bench.cases``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from hdrh.histogram import HdrHistogram

from labkit.bench.cases import (
    EVENT_TYPE,
    Lab,
    Plan,
    paired_ratio,
    provider_settings,
    seed_events,
    signed_request,
)
from labkit.bench.load import HttpRequest
from labkit.config import DEFAULT_API_KEY
from labkit.errors import RunError
from labkit.lab.workload import make_payload
from labkit.servers.procs import Child
from labkit.wire.metering import histogram_summary_ms, new_histogram
from labkit.wire.signing import Signer, new_secret

# -- 4. the poller fleet -----------------------------------------------------------------


def _stats(path: Path) -> tuple[dict[str, Any], float]:
    """The fleet's stats file and when it was written (its mtime, seconds)."""
    for _ in range(20):
        try:
            st = os.stat(path)
            return json.loads(path.read_text()), st.st_mtime_ns / 1e9
        except (OSError, json.JSONDecodeError):
            time.sleep(0.02)
    raise RunError(f"cannot read the fleet's stats file {path}")


def lateness_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fleet's poll lateness (ms: mean, p50, p90, p99, max, polls) of the ticks between two stats files.

    Each file holds the whole run's histogram so far (encoded); the ticks in
    between are the later one's counts less the earlier one's, bucket by bucket.
    """
    a = (before.get("histograms") or {}).get("lateness") or {}
    b = (after.get("histograms") or {}).get("lateness") or {}
    if not b.get("count"):
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None, "polls": 0}
    hb = HdrHistogram.decode(b["hdr"])
    ha = HdrHistogram.decode(a["hdr"]) if a.get("count") else None
    diff = new_histogram()
    for item in hb.get_recorded_iterator():
        value = item.value_iterated_to
        n = item.count_at_value_iterated_to - (ha.get_count_at_value(value) if ha is not None else 0)
        if n > 0:
            diff.record_value(value, n)
    polls = int(b["count"]) - int(a.get("count") or 0)
    out = histogram_summary_ms(diff)
    if polls > 0:  # the mean from the running sums: exact, where the histogram's buckets round
        out["mean"] = (float(b["sum_us"]) - float(a.get("sum_us") or 0.0)) / polls / 1000
    return {**out, "polls": polls}


def _wait_file(child: Child, path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if not child.alive():
            raise RunError(f"{child.name} exited during start-up: {child.log_tail()}")
        if time.monotonic() > deadline:
            raise RunError(f"{child.name} did not start within {timeout_s:.0f} s")
        time.sleep(0.05)


def fleet_step(lab: Lab, provider: Child, pollers: int, plan: Plan, tick: Callable[[], None]) -> dict[str, Any]:
    """One fleet of ``pollers`` at ``plan.fleet_interval_s``: lateness and achieved poll rate."""
    interval = plan.fleet_interval_s
    stats_path = lab.work_dir / f"fleet-{pollers}.stats.json"
    fleet = lab.group.start_worker(
        f"fleet-{pollers}",
        "poller",
        {
            "base_url": provider.url,
            "api_key": DEFAULT_API_KEY,
            "pollers": pollers,
            "interval_s": interval,
            "db_path": str(lab.work_dir / f"fleet-{pollers}.db"),
            "stats_path": str(stats_path),
            "seed": 1,
        },
    )
    _wait_file(fleet, stats_path)
    # Warm-up: every poller has connected and polled once, and the fleet has frozen its objects (gc).
    warm = min(interval + 1.5, plan.fleet_seconds / 3)
    end = time.monotonic() + plan.fleet_seconds
    time.sleep(warm)
    tick()
    s1, t1 = _stats(stats_path)
    p_cpu0, f_cpu0 = provider.cpu_s(), fleet.cpu_s()
    while time.monotonic() < end:
        time.sleep(min(1.0, max(end - time.monotonic(), 0)))
        tick()
    s2, t2 = _stats(stats_path)
    p_cpu, f_cpu = provider.cpu_s() - p_cpu0, fleet.cpu_s() - f_cpu0
    alive = fleet.alive()
    lab.group.stop(fleet)
    final, _ = _stats(stats_path)
    c1, c2, cf = s1.get("counters", {}), s2.get("counters", {}), final.get("counters", {})
    window = t2 - t1
    achieved = (c2.get("polls", 0) - c1.get("polls", 0)) / window if window > 0 else math.nan
    intended = pollers / interval
    lateness = cf.get("lateness") or c2.get("lateness") or {}
    rate_ratio = achieved / intended if intended else math.nan
    p99 = lateness.get("p99")
    after_warmup = lateness_between(s1, s2)
    errors = int(cf.get("errors", 0))
    return {
        "pollers": pollers,
        "interval_s": interval,
        "window_s": window,
        "intended_polls_per_s": intended,
        "achieved_polls_per_s": achieved,
        "rate_ratio": rate_ratio,
        # lateness of every tick of the run, the warm-up's included (what the 50 ms limit judges: the stricter figure)
        "lateness_ms": lateness,
        # lateness of the ticks after the warm-up only (the histogram at the window's end less the one at its start);
        # "lateness_ms_after_warmup" holds the same under a name that says it (the older key's "_s" named the warm-up's
        # length, "at_s" inside; kept, since keys are only ever added)
        "lateness_ms_after_warmup": {"warmup_s": round(warm, 1), **after_warmup},
        "lateness_ms_after_warmup_s": {"at_s": round(warm, 1), **after_warmup},
        # and of the warm-up itself (connects, the first GC): what this key held before, against its name
        "lateness_ms_during_warmup": {"until_s": round(warm, 1), **(c1.get("lateness") or {})},
        "rtt_ms": cf.get("rtt"),
        "polls": int(cf.get("polls", 0)),
        "errors": errors,
        "skipped_ticks": int(cf.get("skipped_ticks", 0)),
        "fleet_cpu_share": f_cpu / window if window > 0 else None,
        "provider_cpu_share": p_cpu / window if window > 0 else None,
        "ok": bool(alive and p99 is not None and p99 < 50.0 and rate_ratio >= 0.98 and errors == 0),
    }


def poller_fleet(lab: Lab, plan: Plan) -> dict[str, Any]:
    """The largest fleet (of ``plan.fleet_steps``) one process runs on its timetable."""
    db = lab.work_dir / "fleet-provider.db"
    seed_events(db, 1, plan.payload_bytes)
    provider = lab.group.start_server("fleet-provider", "provider", provider_settings(db, poll_interval_hint_s=plan.fleet_interval_s))
    steps: list[dict[str, Any]] = []
    total_s = len(plan.fleet_steps) * plan.fleet_seconds
    started = time.monotonic()

    def tick() -> None:
        lab.progress("bench: poller fleet", min(int(time.monotonic() - started), int(total_s)), int(total_s))

    for n in plan.fleet_steps:
        step = fleet_step(lab, provider, n, plan, tick)
        steps.append(step)
        if not step["ok"]:
            break
    lab.group.stop(provider)
    passed = [s for s in steps if s["ok"]]
    best = passed[-1] if passed else steps[0]
    return {
        "interval_s": plan.fleet_interval_s,
        "lateness_limit_ms": 50.0,
        "pollers_per_process": best["pollers"] if passed else 0,
        "tried": [s["pollers"] for s in steps],
        "best": best,
        "steps": steps,
        "rate_ratio": best["rate_ratio"],
        "lower_bound": bool(passed) and len(passed) == len(plan.fleet_steps),
    }


# -- 5. receiver ingest ------------------------------------------------------------------


def presigned(secret: str, count: int, rep: int, payload_bytes: int) -> list[HttpRequest]:
    """``count`` webhooks with distinct ids and events, signed now (valid for the 5-minute window)."""
    rng = random.Random(rep)
    payload = orjson.dumps(make_payload(0, payload_bytes, rng))
    now = int(time.time())
    base = (rep + 1) * 10_000_000
    signer = Signer([secret])
    out = []
    for i in range(count):
        row = (base + i, EVENT_TYPE, time.time_ns(), payload)
        out.append(signed_request("/webhook/bench", signer, f"msg_{base + i}", row, now))
    return out


def receiver_ingest(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Signed webhooks verified and recorded per second, against the same receiver not verifying."""
    secret = new_secret()
    servers = {}
    for name, verify in (("verified", True), ("unverified", False)):
        servers[name] = lab.group.start_server(
            f"ingest-{name}", "receiver", {"secrets": [secret], "db_path": str(lab.work_dir / f"ingest-{name}.db"), "verify": verify}
        )
    count = int(plan.ingest_max_rps * plan.seconds) + 1000

    def requests(rep: int) -> dict[str, list[HttpRequest]]:
        # The same pre-signed requests for both receivers (each has its own database): identical work.
        return dict.fromkeys(servers, presigned(secret, count, rep, plan.payload_bytes))

    seg = lab.alternate(plan, servers, requests, "bench: receiver ingest")
    counters = {}
    for name, child in servers.items():
        with lab.client(child.url) as c:
            counters[name] = c.get("/stats").json().get("counters", {})
        lab.group.stop(child)
    out: dict[str, Any] = {"distinct_requests_per_rep": count}
    for name in servers:
        s = seg.series(name)
        s["accepted"] = int(counters[name].get("accepted", 0))
        s["duplicates"] = int(counters[name].get("duplicates", 0))
        s["rejected"] = counters[name].get("rejected", {})
        out[name] = s
    out["ratio"] = paired_ratio(seg.ok_rps("verified"), seg.ok_rps("unverified"))
    return out
