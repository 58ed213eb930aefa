# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Held streams: Server-Sent Events and WebSocket beside webhooks and long polling
#
# A webhook needs a consumer that can be reached: a public HTTPS endpoint. A
# phone behind carrier NAT, a browser or a service behind a firewall has none,
# and its usual answer is long polling. The option teams actually weigh there is
# a **held stream**: the consumer opens one connection to the provider and the
# provider pushes every event down it, as Server-Sent Events (`GET /stream`,
# `text/event-stream`) or as WebSocket messages (`/ws`).
#
# What a stream changes, in the model (`labkit.model.streams`):
#
# * **lag**: one one-way trip plus the fan-out's queueing (the k-th of K streams
#   waits k writes), against long polling's answer plus a new request;
# * **bytes per event**: one frame (a few dozen bytes of SSE lines or a 2 to 10
#   byte WebSocket header around the event's JSON), against a request and a
#   response per event for long polling and a signed request for a webhook;
# * **memory**: every held connection costs the provider memory whether or not
#   events flow; how much is measured here, not derived.
#
# Below, one seeded stream of events goes to the same number of consumers each
# way, **real servers on this machine** (a provider process on 127.0.0.1, each
# style's consumer process), one style after the other.

# %%
import labkit
from labkit import figures
from labkit import notebook as nb
from labkit import styles as registry
from labkit.report.stream_figure import stream_table, streams_figure

nb.setup()

# %% [markdown]
# ## Parameters
#
# `STYLES` names the four delivery styles; a style this installation has not
# registered is left out (and said so below), so the notebook runs everywhere.
# Polling runs as long polling (`LONG_POLL_WAIT_S`), the fair comparison for
# consumers that cannot take a webhook.

# %% tags=["parameters"]
# Papermill parameters (papermill -p NAME VALUE). Quick mode is the environment variable LABKIT_QUICK=1.
STYLES = ("webhook", "polling", "sse", "websocket")
RATE_PER_S = nb.params(full=1.0, quick=2.0)  # events per second, Poisson arrivals
DURATION_S = nb.params(full=60.0, quick=4.0)
CONSUMERS = nb.params(full=200, quick=10)  # per style: subscribers, pollers, streams
LONG_POLL_WAIT_S = 30.0
CAPACITY_USERS = nb.params(full=2000, quick=6)  # the Locust streams capacity test steps up to this many streams
CAPACITY_S = nb.params(full=120.0, quick=16.0)
LAG_SLO_MS = 1000.0
SEED = 7

# %%
styles = tuple(s for s in STYLES if registry.get(s) is not None)
print("measured here:", ", ".join(styles), "| not installed:", ", ".join(sorted(set(STYLES) - set(styles))) or "none")
settings = labkit.RunSettings(
    workload=labkit.WorkloadSettings(arrival="poisson", rate_per_s=RATE_PER_S, duration_s=DURATION_S, payload_bytes=256, seed=SEED),
    styles=styles,
    long_poll_wait_s=LONG_POLL_WAIT_S,
    pollers=CONSUMERS,
    subscribers=CONSUMERS,
)
settings

# %% [markdown]
# ## One workload, every style
#
# `nb.run` calls `labkit.run` (the library behind
# `labkit compare --styles webhook,polling,sse,websocket`). The table puts each
# measurement beside its model. Stream styles add three rows: `connections`
# held, `reconnects` (a stream that ended and resumed from its last event id)
# and `dropped_backpressure` (streams the provider cut because they fell behind).

# %%
result = nb.run(settings, "nb07-streams")
nb.summary_frame(result.summary)

# %% [markdown]
# ## Lag: who sees the event first?
#
# Each curve is the share of (event, consumer) pairs delivered within a given
# time, measured from the event's creation in the provider's log to its record
# at the consumer. A held stream and a held long poll both answer as soon as
# the event exists; the stream skips the next request, and its fan-out writes
# one prepared frame per connection.

# %%
results = labkit.load_results(result.results_dir)
events = labkit.load_events(result.results_dir)
figures.latency_cdf(events)

# %% [markdown]
# ## What each style costs per event and per connection
#
# Bytes per event per consumer (both directions, headers included), provider CPU
# per delivered event, and provider memory per held connection: the provider's
# RSS above the same run's provider that held no connection (the webhook's),
# divided by the connections. Colours are the styles' own everywhere in labkit.

# %%
streams_figure(results, streams_only=False)

# %%
stream_table(results, streams_only=False)

# %% [markdown]
# ## Reconnects and backpressure
#
# A stream is a connection, and connections end: a phone sleeps, a NAT forgets
# an idle mapping, the provider restarts. Each consumer keeps the id of the last
# event it recorded and reconnects with a jittered backoff, sending it as
# `Last-Event-ID` (SSE) or in its first message (WebSocket); the provider replays
# from its log, and the consumer drops anything it has already seen. So a
# reconnect costs a little lag and a handshake, never an event: look at `lost`
# and `duplicates` above.
#
# A consumer that reads too slowly would make the provider buffer without end.
# Each stream has a bounded queue instead (`StreamLimits.queue_max_events`,
# `queue_max_bytes`); past it the stream is dropped with its reason and resume
# cursor, counted in `dropped_backpressure`, and the consumer catches up from the
# log like any reconnect. On loopback with healthy consumers both counts stay at
# 0; `labkit failures scenarios/experiments/failures.toml` cuts streams, kills
# consumers and restarts the provider to measure them under stress.

# %% [markdown]
# ## How many streams does one provider process hold?
#
# A Locust step test (`labkit capacity streams`): users each hold one SSE stream
# while events are published in the background at a fixed rate; the users grow
# step by step until the p99 delivery lag (event creation to the frame read by
# the user) breaks the SLO, or the maximum is reached. On a shared 2-core machine
# the load generator competes with the provider for the CPU, so this is a floor.

# %%
cap = nb.capacity(scenario="streams", max_users=CAPACITY_USERS, duration_s=CAPACITY_S, slo_p99_ms=LAG_SLO_MS)
print(f"{cap.summary['capacity']['users']} streams within a {LAG_SLO_MS:g} ms lag p99; limited by {cap.summary['limited_by']}")
labkit.load_capacity(cap.results_dir)[["users", "rps", "p99_ms", "failures", "server_cpu_percent", "met_slo"]]

# %% [markdown]
# ## What this means for your choice
#
# * If your consumers **can** expose HTTPS, webhooks stay the simplest push: no
#   connection to hold per consumer, and the provider's memory does not grow
#   with consumers that are idle.
# * If they **cannot**, compare a held stream with long polling on the numbers
#   above: a stream pays one frame per event where long polling pays a request and
#   a response, and both hold a connection per consumer. Where the stream met your
#   lag target and lost nothing, it is the better pull-free push; the decision
#   report (`labkit report --requirements scenarios/requirements/mobile-app-behind-nat.toml`)
#   weighs exactly these measured numbers and says which stream it recommends.
# * Budget memory per connection, not per event: the provider's RSS grows with
#   every held stream; multiply the measured KB per connection by your consumers.
# * SSE is one-way over plain HTTP (proxies, HTTP/2 and `Last-Event-ID` resume for
#   free); WebSocket adds a two-way channel and a smaller frame at the cost of an
#   upgrade that some proxies refuse. Pick WebSocket only if consumers need to
#   talk back on the same connection.
