"""``labkit bench``: the lab's own parts against the limits of the same machine, as ratios.

A benchmark lab whose servers and clients are slow measures itself instead of
the trade-off. Five pairs, each measured in one run, alternating, several
repetitions, median reported (absolute numbers on a shared machine are noise;
ratios are what to compare):

1. ``poll_endpoint``: provider ``GET /events`` (304 and a 200 page) / a bare Starlette endpoint;
2. ``dispatcher``: webhook deliveries per second / the receiver's ceiling under the same load tool;
3. ``latency_floor``: webhook end-to-end p50, p99 / one bare HTTP round trip;
4. ``poller_fleet``: pollers per process at 5 s with lateness p99 < 50 ms, achieved / intended rate;
5. ``receiver_ingest``: verified webhooks per second / the same receiver not verifying;
6. ``process_scaling``: poller fleet polls/s and receiver deliveries/s at N processes / (N x 1 process).

``run_bench`` writes ``results/bench/<run-id>.json`` (schema_version 1).
"""

from __future__ import annotations

from labkit.bench.suite import (
    BENCHMARKS,
    RATIO_KEYS,
    SCHEMA_VERSION,
    TARGETS,
    BenchResult,
    read_bench,
    run_bench,
)

__all__ = ["BENCHMARKS", "RATIO_KEYS", "SCHEMA_VERSION", "TARGETS", "BenchResult", "read_bench", "run_bench"]
