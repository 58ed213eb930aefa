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
# # 1. Push or poll: how late does the consumer see an event?
#
# The article's first claim: *webhooks push as soon as an event occurs and cut
# latency; APIs answer requests, so a polling consumer sees events late.*
#
# How late is "late"? A poller that asks every **T** seconds finds an event at
# its next poll. Events arrive at random moments, so the wait is spread evenly
# between 0 (the event came just before a poll) and T (just after one):
#
# * mean delay **T/2** (+ one round trip, RTT), median T/2, p99 0.99 T;
# * push: one round trip, whatever T would have been.
#
# Below, one seeded stream of events is delivered **both ways by real servers on
# this machine**: a provider (SQLite event log, signed-webhook dispatcher, cursor
# feed), a verifying receiver and a poller, each a separate process on
# 127.0.0.1. Every event is timed from its creation in the provider's log to the
# moment the consumer processed it. Dashed lines are the model, never a measurement.

# %%
import labkit
from labkit import figures
from labkit import notebook as nb

nb.setup()

# %% [markdown]
# ## Parameters
#
# `nb.params(full=..., quick=...)` picks the value for the mode: full runs are
# long enough for stable percentiles; quick mode (`LABKIT_QUICK=1`, used by the
# tests) only checks that everything runs. Change anything here and rerun.

# %% tags=["parameters"]
# Papermill parameters (papermill -p NAME VALUE). Quick mode is the environment variable LABKIT_QUICK=1.
RATE_PER_S = 20.0  # events per second, Poisson arrivals
DURATION_S = nb.params(full=60.0, quick=3.0)
POLL_INTERVAL_S = nb.params(full=1.0, quick=0.5)
SEED = 1  # the same seed gives the same arrival times and payloads, for both styles

# %%
settings = labkit.RunSettings(
    workload=labkit.WorkloadSettings(arrival="poisson", rate_per_s=RATE_PER_S, duration_s=DURATION_S, payload_bytes=256, seed=SEED),
    poll_interval_s=POLL_INTERVAL_S,
)
settings

# %% [markdown]
# ## One workload, both ways
#
# `nb.run` calls `labkit.run` (the library behind `labkit compare`): for each
# style a fresh provider and that style's consumer start, the workload is
# published on its timetable, the run drains until every event has arrived, and
# every process stops. The table shows each measurement beside the model's
# prediction.

# %%
result = nb.run(settings, "nb01-latency")
nb.summary_frame(result.summary)

# %% [markdown]
# ## The latency distributions
#
# Read the curves from left to right: the share of events delivered within a
# given time. Push (blue) is done within a few milliseconds: one HTTP request
# from the dispatcher to the receiver. Polling (red) is a straight ramp on a
# linear axis, which is what "uniform on [0, T]" looks like; on this log axis
# it bends up towards T. The dashed line is the model for the same T.

# %%
results = labkit.load_results(result.results_dir)
events = labkit.load_events(result.results_dir)
rtt_ms = float(results.loc[results["style"] == "polling", "rtt_ms.mean"].iloc[0])
figures.latency_cdf(events, poll_interval_s=POLL_INTERVAL_S, rtt_ms=rtt_ms)

# %% [markdown]
# ## T/2, made visible
#
# Each dot is one event: when it was created (x) and how long the consumer took
# to see it (y). Polling draws a **sawtooth**: every tooth is one poll period;
# an event created just after a poll waits almost T (the top of a tooth), one
# created just before the next poll waits almost nothing. The teeth are filled
# evenly, so their average is half a tooth: **T/2**. The push panel has no
# teeth: every event waits one round trip.

# %%
figures.latency_timeline(events, poll_interval_s=POLL_INTERVAL_S, rtt_ms=rtt_ms, window_s=10 * POLL_INTERVAL_S)

# %% [markdown]
# The same in numbers: the polling mean next to T/2 + RTT, the p99 next to
# 0.99 T + RTT. With a few thousand events they agree within a few percent; a
# quick run has too few events for that, so expect a wider gap there.

# %%
nb.summary_frame(result.summary).loc[["latency mean (ms)", "latency p50 (ms)", "latency p99 (ms)"]]

# %% [markdown]
# ## Move the poll interval
#
# The slider redraws the model for another T over the measured curves: halve T
# and the dashed ramp, and the mean delay, halve; but the number of polls per
# event doubles (the line under the slider says how many). The button runs
# polling alone at the chosen T on the same seeded workload, so the measured
# red curve moves to the new T and can be compared with the model there.
# (In a headless run, such as the tests, the widget shows its first view only.)

# %%
explore = labkit.RunSettings(
    workload=labkit.WorkloadSettings(arrival="poisson", rate_per_s=RATE_PER_S, duration_s=nb.params(full=20.0, quick=3.0), payload_bytes=256, seed=SEED),
    poll_interval_s=POLL_INTERVAL_S,
    drain_timeout_s=60,
)
nb.interval_explorer(explore, results, events, name="nb01-interval")

# %% [markdown]
# ## What this means for your choice
#
# * **Latency is the first factor, and the model is reliable.** A poller's p99
#   delay is about T, its mean T/2. If consumers must see an event within L
#   seconds (p99), polling needs T <= L; push meets any target down to one
#   round trip, here a few milliseconds.
# * **Low latency by polling is bought with requests.** Each poller sends
#   1/T requests a second whether or not anything happened; notebook 2 measures
#   what that costs in bytes and wasted polls, and where polling is the cheaper
#   style after all.
# * **Long polling** (the server holds the request until an event arrives) gives
#   polling push-like latency without a public endpoint on the consumer's side;
#   notebook 2 measures it too.
# * Push can only be this fast when the consumer can receive HTTP requests (a
#   public HTTPS endpoint); notebook 5 covers what that endpoint must check,
#   notebook 4 what happens when it is down.
