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
# Clients served within L: the latest `labkit served` search is read when there is one (full mode);
# quick mode runs a small search of its own (every variant, a few consumers, short runs).
SERVED_FILE = "experiments/clients-served.toml"
PAPER_RATIOS = {"SSE / polling (Van de Vyvere et al. 2020)": 5.0, "SSE / polling behind a cache": 3.1}

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
# ## Clients served within L = 1 s: each style's limit, found
#
# Van de Vyvere, Colpaert and Verborgh (2020) asked how many clients one
# single-threaded server serves within an acceptable latency by polling and by
# SSE, and found SSE served 5x as many (3.1x against polling behind a cache).
# `labkit served scenarios/experiments/clients-served.toml` asks the same of one
# provider process: for each variant a climb, then bisection until the count that
# held (p99 within L, nothing lost) and the count that failed are within 10 %,
# every probe a real run. The provider runs on a core of its own, the consumer
# fleets on the others; a limit whose failing run had the fleet out of CPU is a
# lower bound, and the ratios are ranges from the bracketing runs, never a
# single number the steps do not support.

# %%
import tomllib

import matplotlib.pyplot as plt
import pandas as pd

from labkit.runs.experiments import load_experiment, parse_experiment
from labkit.runs.served import load_served, ratio_rows, search_settings, served_rows, served_search

served_path = nb.checkout() / "results" / "clients-served" / "served.json"
if served_path.exists() and not nb.quick_mode():
    served = load_served(served_path)  # the latest labkit served of the shipped file
else:
    toml = nb.scenarios_dir() / SERVED_FILE
    exp = load_experiment(toml, out_dir=nb.results_root())
    if nb.quick_mode():  # the same variants, shrunk: 2 s of events, 4 consumers, one probe each
        doc = tomllib.loads(toml.read_text())
        doc["workload"] |= {"duration_s": 2.0, "rate_per_s": 2.0}
        doc["run"] |= {"drain_timeout_s": 10, "pollers": 1}
        doc["search"] |= {"start": 4, "starts": {}, "max_consumers": 8, "max_probes": 1, "time_budget_s": 300}
        exp = parse_experiment(doc, toml, out_dir=nb.results_root())
    served = nb.off_the_loop(served_search, exp, search_settings(exp))
print(f"load average before {served['load_average_before']}, after {served['load_average_after']}; {served['cores']} cores")
pd.DataFrame(served_rows(served))

# %%
rows, ratios = served_rows(served), ratio_rows(served)
fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 3.5))
for i, r in enumerate(rows):
    if r["limit"] is None:
        continue
    top = r["failed_at"] if r["failed_at"] is not None and not r["lower_bound"] else r["limit"] * 1.5
    ax.plot([r["limit"], top], [i, i], lw=6, alpha=0.5, color="C0" if not r["lower_bound"] else "C1")
    ax.plot([r["limit"]], [i], "k|", ms=14)
ax.set_yticks(range(len(rows)), [r["variant"] for r in rows])
ax.set_xscale("log")
ax.set_xlabel(f"consumers within p99 <= {served['latency_bound_ms']:g} ms (| held; bar to the run that failed; orange: lower bound)")
for i, r in enumerate(ratios):  # an open end runs to the axis' edge (orange); no end at all: said in words
    if r["low"] is None and r["high"] is None:
        bx.text(1.0, i, "no range supported (a lower bound on both sides)", ha="center", va="center", fontsize=8)
        continue
    ends = [r["low"] or 0.1, r["high"] or 100.0]
    bx.plot(ends, [i, i], lw=6, alpha=0.5, color="C0" if None not in (r["low"], r["high"]) else "C1")
bx.set_xlim(0.1, 100.0)
bx.set_yticks(range(len(ratios)), [f"{r['variant']} / {r['over']}" for r in ratios])
for label, value in PAPER_RATIOS.items():
    bx.axvline(value, ls="--", color="grey")
    bx.text(value, len(ratios) - 0.5, label, rotation=90, va="top", fontsize=8)
bx.set_xscale("log")
bx.set_xlabel("ratio of limits: the range both brackets allow (orange: open at one end)")
fig.tight_layout()

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
