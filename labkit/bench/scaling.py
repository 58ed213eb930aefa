"""``labkit bench`` case ``process_scaling``: what N consumer processes give against one.

Two measures, each at 1 process and at N (``processes = auto``, at least 2),
reported as N-process / (N x 1-process), where 1.0 is perfect scaling:

- pollers per machine: an overloaded poller fleet (more pollers on a shorter
  interval than one process can keep) polls a bare 304 endpoint (the
  cheapest server there is, ``labkit.servers.bare``) and its achieved poll rate
  over a window is read from two exact snapshots (SIGUSR1). An overloaded
  fleet skips ticks rather than bunching up, so its achieved rate is the rate
  it can hold at its lateness; the lateness is reported beside it.
- deliveries per second: pre-signed webhooks driven closed-loop (wrk, or the
  raw load client) into a verifying receiver of 1 process and of N workers on
  one socket, alternating, so drift cancels in the paired ratio.

Both measure the consumer side, but the server it talks to (or the load tool
driving it) runs on the same machine: on a machine with fewer cores than N
plus one, the ratio is bounded by the cores, not by labkit. Cores, load and
the CPU each side used are reported so a reader can tell.

So each measure also carries a per-CPU efficiency, (rate_N / consumer
CPU-seconds_N) / (rate_1 / CPU-seconds_1): what splitting the work into
processes costs, which the cores do not bound. ``judge_basis`` says which of
the two a target should judge on this machine (the raw ratio when it has at
least N + 1 cores, else the efficiency) and why.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from labkit.bench.cases import Lab, Plan, cv, median, paired_ratio, series
from labkit.bench.consumer_cases import presigned
from labkit.config import DEFAULT_API_KEY
from labkit.consumers.processes import resolve
from labkit.errors import RunError
from labkit.servers.procs import Child
from labkit.styles.polling import snapshot_stats, wait_for_file
from labkit.wire.signing import new_secret

# (pollers, interval_s, window_s) by plan mode: an intended rate no single process keeps up with.
FLEET_SIZES = {"tiny": (200, 0.05, 1.5), "quick": (2000, 0.1, 6.0), "full": (4000, 0.1, 10.0)}
WARM_S = {"tiny": 1.0, "quick": 3.0, "full": 4.0}


def processes_to_compare() -> int:
    """N: one process per core, and at least two (a scaling ratio needs two)."""
    return max(2, resolve("auto"))


def judge_basis(cores: int | None, n: int | None) -> tuple[str, str]:
    """Which scaling ratio is honest to judge here: ``("raw" | "cpu_efficiency", reason)``.

    N consumer processes and the server (or load tool) they work against need
    N + 1 cores to scale; with fewer, the raw ratio measures the machine, and
    the per-CPU efficiency is what still says whether labkit scales.
    """
    if not cores or not n:
        return "raw", "process_scaling was not measured: no core count, so the raw ratio is judged"
    if cores >= n + 1:
        return "raw", f"{cores} cores >= N + 1 = {n + 1}: the {n} processes and their counterpart each get a core"
    return (
        "cpu_efficiency",
        f"{cores} cores < N + 1 = {n + 1}: {n} processes and their counterpart cannot each get a core, so the raw ratio "
        "is bounded by the cores; judged the work per consumer CPU-second, N processes vs 1",
    )


def per_cpu_efficiency(n_pairs: list[tuple[float, float | None]], one_pairs: list[tuple[float, float | None]]) -> float | None:
    """Median over paired repetitions of (rate_N / cpu_N) / (rate_1 / cpu_1); each pair is (rate, consumer CPU share)."""
    ratios = []
    for (rate_n, cpu_n), (rate_1, cpu_1) in zip(n_pairs, one_pairs, strict=True):
        if not cpu_n or not cpu_1 or not rate_1 or not math.isfinite(cpu_n) or not math.isfinite(cpu_1):
            continue
        ratios.append((rate_n / cpu_n) / (rate_1 / cpu_1))
    return median(ratios)


def _fleet_rate(lab: Lab, server: Child, processes: int, plan: Plan, rep: int) -> dict[str, Any]:
    pollers, interval, window = FLEET_SIZES.get(plan.mode, FLEET_SIZES["full"])
    name = f"scaling-fleet-{processes}p-{rep}"
    stats = lab.work_dir / f"{name}.stats.json"
    settings = {
        "base_url": server.url,
        "api_key": DEFAULT_API_KEY,
        "pollers": pollers,
        "interval_s": interval,
        "db_path": ":memory:",  # a 304 records nothing
        "stats_path": str(stats),
        "seed": rep,
        "processes": processes,
    }
    fleet = lab.group.start_worker(name, "poller", settings)
    try:
        wait_for_file(fleet, stats, timeout_s=60.0)
        time.sleep(WARM_S.get(plan.mode, 4.0))
        s1, t1, cpu1, srv1 = _snap(fleet, stats), time.monotonic(), fleet.cpu_s(), server.cpu_s()
        time.sleep(window)
        s2, t2, cpu2, srv2 = _snap(fleet, stats), time.monotonic(), fleet.cpu_s(), server.cpu_s()
    finally:
        lab.group.stop(fleet)
    c1, c2 = s1.get("counters", {}), s2.get("counters", {})
    span = t2 - t1
    polls = int(c2.get("polls", 0)) - int(c1.get("polls", 0))
    return {
        "processes": processes,
        "pollers": pollers,
        "intended_polls_per_s": pollers / interval,
        "achieved_polls_per_s": polls / span if span > 0 else math.nan,
        "lateness_ms": c2.get("lateness"),
        "errors": int(c2.get("errors", 0)) - int(c1.get("errors", 0)),
        "fleet_cpu_share": (cpu2 - cpu1) / span if span > 0 else None,
        "server_cpu_share": (srv2 - srv1) / span if span > 0 else None,
    }


def _snap(fleet: Child, stats: Path) -> dict[str, Any]:
    snap = snapshot_stats(fleet, stats)
    if not snap:
        raise RunError(f"process_scaling: {fleet.name} gave no snapshot: {fleet.log_tail()}")
    return snap


def pollers_per_machine(lab: Lab, plan: Plan, n: int) -> dict[str, Any]:
    """Achieved poll rate of an overloaded fleet at 1 and ``n`` processes, against a bare 304 endpoint."""
    bare = lab.group.start_server("scaling-bare", "bare", {"responses": {"/events": {"status": 304, "headers": [["etag", '"h1"']]}}})
    runs: dict[int, list[dict[str, Any]]] = {1: [], n: []}
    reps = max(1, min(plan.reps, 2))
    for rep in range(reps):
        for k in [1, n] if rep % 2 == 0 else [n, 1]:
            runs[k].append(_fleet_rate(lab, bare, k, plan, rep))
            lab.progress("bench: process scaling (pollers)", sum(len(v) for v in runs.values()), reps * 2)
    lab.group.stop(bare)
    out: dict[str, Any] = {}
    for k, label in ((1, "one"), (n, "n")):
        rates = [r["achieved_polls_per_s"] for r in runs[k]]
        out[label] = {**runs[k][-1], "achieved_polls_per_s": median(rates), "samples_polls_per_s": [round(v, 1) for v in rates]}
        out[label]["cv"] = cv(rates)
    pairs = zip(runs[n], runs[1], strict=True)
    out["ratio"] = median([a["achieved_polls_per_s"] / (n * b["achieved_polls_per_s"]) for a, b in pairs if b["achieved_polls_per_s"]])
    out["cpu_efficiency"] = per_cpu_efficiency(
        [(r["achieved_polls_per_s"], r["fleet_cpu_share"]) for r in runs[n]],
        [(r["achieved_polls_per_s"], r["fleet_cpu_share"]) for r in runs[1]],
    )
    for k, label in ((1, "one"), (n, "n")):
        out[label]["polls_per_cpu_s"] = median([r["achieved_polls_per_s"] / r["fleet_cpu_share"] for r in runs[k] if r["fleet_cpu_share"]])
    return out


def receiver_deliveries(lab: Lab, plan: Plan, n: int) -> dict[str, Any]:
    """Verified webhooks per second into a receiver of 1 process and of ``n`` workers."""
    secret = new_secret()
    servers = {
        k: lab.group.start_server(
            f"scaling-receiver-{k}p",
            "receiver",
            {"secrets": [secret], "db_path": str(lab.work_dir / f"scaling-receiver-{k}p.db"), "processes": k},
        )
        for k in (1, n)
    }
    count = int(plan.ingest_max_rps * plan.seconds * n) + 1000
    seg = lab.alternate(
        plan,
        servers,
        lambda rep: dict.fromkeys(servers, presigned(secret, count, 100 + rep, plan.payload_bytes)),
        "bench: process scaling (receiver)",
    )
    got, cpu = seg.results, seg.cpu
    for child in servers.values():
        lab.group.stop(child)
    out: dict[str, Any] = {}
    for k, label in ((1, "one"), (n, "n")):
        s = series(got[k])
        s["processes"] = k
        s["server_cpu_share"] = median(cpu[k])
        out[label] = s
    out["ratio"] = paired_ratio([r.ok_rps for r in got[n]], [n * r.ok_rps for r in got[1]])
    out["cpu_efficiency"] = per_cpu_efficiency(
        [(r.ok_rps, c) for r, c in zip(got[n], cpu[n], strict=True)], [(r.ok_rps, c) for r, c in zip(got[1], cpu[1], strict=True)]
    )
    for k, label in ((1, "one"), (n, "n")):
        out[label]["deliveries_per_cpu_s"] = median([r.ok_rps / c for r, c in zip(got[k], cpu[k], strict=True) if c and math.isfinite(c)])
    return out


def process_scaling(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Pollers per machine and receiver deliveries per second at 1 and N processes, as N / (N x 1) ratios."""
    n = processes_to_compare()
    load0 = os.getloadavg()[0]
    pollers = pollers_per_machine(lab, plan, n)
    receiver = receiver_deliveries(lab, plan, n)
    cores = len(os.sched_getaffinity(0))
    judged, reason = judge_basis(cores, n)
    return {
        "processes": n,
        "cores": cores,
        "judged": judged,
        "judged_reason": reason,
        "loadavg_start": round(load0, 2),
        "loadavg_end": round(os.getloadavg()[0], 2),
        "pollers": pollers,
        "receiver": receiver,
        "note": "servers and load tool share the machine: with fewer cores than N + 1 the ratios are bounded by the cores",
    }
