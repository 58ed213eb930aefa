"""The measured columns of a results table, named once.

``load_results`` flattens each style's block of a summary.json into one row
(``{"latency_ms": {"p99": 1}}`` becomes the column ``latency_ms.p99``). Every
reader (analysis, figures, reports) names a column through these constants, so
a renamed key is one edit here and a misspelt one is a NameError, not a column
that silently reads as missing.
"""

from __future__ import annotations

# latency, event creation to the consumer's record (ms)
LATENCY_MEAN = "latency_ms.mean"
LATENCY_SD = "latency_ms.sd"
LATENCY_P50 = "latency_ms.p50"
LATENCY_P90 = "latency_ms.p90"
LATENCY_P99 = "latency_ms.p99"
LATENCY_MAX = "latency_ms.max"

# cost, per event and consumer
REQUESTS_PER_EVENT = "requests_per_event"
BYTES_PER_EVENT = "bytes_per_event"
EMPTY_POLL_RATIO = "empty_poll_ratio"
CPU_S_PER_EVENT = "cpu_s_per_event"
PROVIDER_CPU_S = "provider_cpu_s"
PROVIDER_RSS_MB = "provider_rss_mb"
REQUESTS = "requests"
CONNECTIONS = "connections"
CONSUMERS = "consumers"
POLL_INTERVAL_S = "poll_interval_s"
RTT_MEAN = "rtt_ms.mean"
DELIVERY_RTT_MS = "delivery_rtt_ms"

# the hybrid's reconciling poller (its ``reconcile`` block): its interval, its own cost, what it found
RECONCILE_INTERVAL_S = "reconcile.interval_s"
RECONCILE_REQUESTS_PER_EVENT = "reconcile.requests_per_event"
RECONCILE_BYTES_PER_EVENT = "reconcile.bytes_per_event"
RECONCILE_EMPTY_POLL_RATIO = "reconcile.empty_poll_ratio"
RECONCILE_RECOVERED = "reconcile.recovered"
RECONCILE_CONFIRMED = "reconcile.confirmed"
RECONCILE_PUSHED_AFTER_RECOVERY = "reconcile.pushed_after_recovery"

# what arrived
PUBLISHED = "published"
DELIVERED = "delivered"
LOST = "lost"
DUPLICATES = "duplicates"
RETRIES = "retries"
ATTEMPTS = "attempts"
DEAD = "dead"
RECONNECTS = "reconnects"
DROPPED_BACKPRESSURE = "dropped_backpressure"
DISABLED_ENDPOINTS = "disabled_endpoints"

# the workload every style of a run saw
RATE = "workload.rate_per_s"
# Under a per-consumer or topics audience, the rate each consumer receives on average (the requirement's event_rate_per_s)
RATE_PER_CONSUMER = "audience.rate_per_consumer_per_s"
LAMBDA_T = "workload.lambda_t"
ARRIVAL = "workload.arrival"

# the model's figures beside the measurement
MODEL_LATENCY_MEAN = "model.latency_mean_ms"
MODEL_LATENCY_P50 = "model.latency_p50_ms"
MODEL_LATENCY_P99 = "model.latency_p99_ms"
MODEL_REQUESTS_PER_EVENT = "model.requests_per_event"
MODEL_BYTES_PER_EVENT = "model.bytes_per_event"
MODEL_EMPTY_POLL_RATIO = "model.empty_poll_ratio"
MODEL_CPU_S_PER_EVENT = "model.cpu_s_per_event"
MODEL_LAMBDA_T = "model.lambda_t"
MODEL_ASSUMES = "model.assumes"
OUT_OF_ORDER = "out_of_order"  # events a consumer received after a later one of the log (from events.parquet)
