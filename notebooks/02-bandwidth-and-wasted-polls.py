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
# # 2. Bandwidth and wasted polls: when is push cheaper, and when is polling?
#
# The article's second claim: *webhooks send only when something happened,
# saving bandwidth and needless traffic; APIs leave the consumer in control of
# when it asks.* True at low event rates, and the lab shows by how much. But a
# poll can return many events at once, so at high event rates polling can cost
# *less* than one push per event. Where do the two cross?
#
# One number decides it: **lambda T**, the events that arrive during one poll
# interval (rate lambda times interval T). With Poisson arrivals the model says:
#
# * a poll finds nothing with probability **e^(-lambda T)**;
# * polling costs **1/(lambda T)** requests per event per consumer, push costs **1**;
# * so they cross at **lambda T = 1**, where 36.8 % of polls are still empty.
#
# This notebook measures requests, bytes and empty polls on real servers across
# lambda T from 0.015 to 10, reproduces the famous "98.5 % of polls are wasted",
# and measures the two remedies polling has: conditional requests and long polling.

# %%
from labkit import figures, model
from labkit import notebook as nb

nb.setup()

# %% [markdown]
# ## A sweep over lambda T
#
# One poll interval (T = 0.1 s) and three event rates. Each point is a full run
# of both styles on its own fresh servers, seeded. An experiment is what a TOML
# file in `scenarios/experiments/` declares; here the same tables are written
# inline, with shorter runs in quick mode. A finished point is not run again
# when the notebook is rerun (delete its folder, or pass `force=True`).
#
# A fourth point, lambda T = 0.015, is Zapier's (below): only polling is run
# there (push costs one request per event at any rate), and it polls every
# 20 ms so that a short run still holds a thousand polls or more.

# %% tags=["parameters"]
# Papermill parameters (papermill -p NAME VALUE). Quick mode is the environment variable LABKIT_QUICK=1.
T = 0.1  # the poll interval (s) of the lambda T sweep

# %%
wasted_polls = nb.experiment(
    {
        "experiment": {
            "name": "nb02-wasted-polls",
            "seed": 1,
            "question": "How many polls are wasted as the event rate changes, and where does polling become cheaper than push?",
        },
        "run": {"styles": ["webhook", "polling"], "poll_interval_s": T, "drain_timeout_s": 20},
        "workload": {"arrival": "poisson", "payload_bytes": 256},
        "variants": {
            "lambda-t-0.015": {"styles": ["polling"], "poll_interval_s": 0.02, "rate_per_s": 0.75, "duration_s": nb.params(full=40.0, quick=8.0)},
            "lambda-t-0.1": {"rate_per_s": 1.0, "duration_s": nb.params(full=40.0, quick=4.0)},
            "lambda-t-1": {"rate_per_s": 10.0, "duration_s": nb.params(full=20.0, quick=3.0)},
            "lambda-t-10": {"rate_per_s": 100.0, "duration_s": nb.params(full=10.0, quick=2.0)},
        },
    }
)
table = nb.sweep(wasted_polls)
table[["param.variant", "style", "workload.events", "workload.lambda_t", "empty_poll_ratio", "model.empty_poll_ratio",
       "requests_per_event", "model.requests_per_event", "bytes_per_event", "latency_ms.mean"]]

# %% [markdown]
# ## Requests per event
#
# Push (blue) sends one request per event at every rate. Polling (red) sends one
# request per poll, however many events it finds: at lambda T = 0.1 that is ten
# polls per event, at lambda T = 10 one poll carries ten events. The dashed
# lines are the model; the dotted vertical line is the crossover lambda T = 1.

# %%
figures.cost_vs_lambda_t(table, "requests_per_event")

# %% [markdown]
# ## Bytes per event
#
# Requests are not all the same size: a webhook carries headers, a signature and
# one event; a poll carries headers and whatever it found (an empty page, or a
# 304 with no body at all). The dashed lines are a cost model fitted to these
# runs (`labkit.analysis.calibration`): bytes = a cost per request + a cost per event.
# The crossover moves away from lambda T = 1 by the ratio of those costs.

# %%
figures.cost_vs_lambda_t(table, "bytes_per_event")

# %% [markdown]
# ## Wasted polls, and Zapier's 98.5 %
#
# Zapier, which polls thousands of APIs for its users, counted **30 million
# polls, of which 460,000 found anything new**: 98.5 % of the polls were
# wasted (their RESThooks page, the origin of the figure). Under Poisson
# arrivals a share w of empty polls means e^(-lambda T) = w, so
# lambda T = -ln(w):

# %%
zapier = model.zapier_wasted_ratio()
zapier_lt = model.lambda_t_for_wasted_ratio(zapier)
print(f"Zapier: {model.ZAPIER_POLLS:,} polls, {model.ZAPIER_POLLS_WITH_NEWS:,} with news -> {zapier:.1%} of polls wasted")
print(f"model: lambda T = -ln({zapier:.4f}) = {zapier_lt:.4f}, one event per {1 / zapier_lt:.0f} polls")
print(f"each event cost {model.polling_requests_per_event(1.0, zapier_lt):.0f} poll requests per consumer; push sends 1")
print(f"for example, polling every 15 minutes at that ratio means one event per {15 / zapier_lt / 60:.1f} hours per consumer")

# %% [markdown]
# The figure puts Zapier's ratio (the star) on the model curve and the
# measured points beside it, each with its standard error. The point at
# lambda T = 0.015 is this lab reproducing Zapier's ratio with a real poller.
# Quick runs hold a few hundred polls at most, so expect wide error bars and a
# few extra empty polls at the edges of each run.

# %%
figures.empty_polls_vs_lambda_t(table)

# %%
table.loc[table["style"] == "polling", ["param.variant", "workload.lambda_t", "polls_in_window", "empty_poll_ratio", "model.empty_poll_ratio"]]

# %% [markdown]
# ## Try the model
#
# Move the event rate and the poll interval: the line below says how many polls
# are wasted and which style sends fewer requests. It is the model only (no
# run), so it answers instantly for rates and intervals the lab never ran.

# %%
nb.lambda_t_explorer()

# %% [markdown]
# ## Polling's two remedies: conditional requests and long polling
#
# * **Conditional requests**: the poller sends `If-None-Match` with the ETag of
#   its last answer; when nothing is new the provider answers **304 Not
#   Modified** with no body (GitHub does not even charge a 304 against the rate
#   limit). The poll still happens, but an empty one costs fewer bytes.
# * **Long polling**: the provider holds the request until an event arrives
#   (or about 30 s pass). No empty polls at all, and an event is delivered within
#   one round trip of its arrival, like push, without a public endpoint on the
#   consumer's side. The price: one open connection per waiting consumer.
#
# Four variants on one workload (lambda T = 0.5 for the interval pollers, so
# most polls are empty and the difference shows):

# %%
remedies = nb.experiment(
    {
        "experiment": {"name": "nb02-variants", "seed": 6, "question": "What do conditional requests and long polling change?"},
        "run": {"poll_interval_s": 0.25, "drain_timeout_s": 30},
        "workload": {"arrival": "poisson", "rate_per_s": 2.0, "duration_s": nb.params(full=30.0, quick=3.0), "payload_bytes": 512},
        "variants": {
            "push": {"styles": ["webhook"]},
            "poll-conditional": {"styles": ["polling"]},
            "poll-unconditional": {"styles": ["polling"], "conditional": False},
            "long-poll": {"styles": ["polling"], "long_poll_wait_s": 10.0},
        },
    }
)
variants = nb.sweep(remedies)
figures.variant_bars(variants)

# %%
variants[["param.variant", "style", "requests_per_event", "polls", "empty_polls", "not_modified", "bytes_per_event", "latency_ms.mean", "latency_ms.p99"]]

# %% [markdown]
# Read the table: the conditional poller's empty polls came back as 304s
# (`not_modified`), the unconditional poller's as 200s carrying an empty JSON
# page. The saving in bytes is real but small: a 304 drops only the body, and
# an empty cursor page is a few dozen bytes next to a few hundred bytes of
# headers that every poll pays. The larger gain of a 304 is elsewhere: APIs
# such as GitHub's do not count it against the rate limit (this lab's provider
# refunds it too), so a conditional poller can afford a shorter T.
#
# The long poller made about one request per event, and its latency sits next
# to push's, far below T/2.
#
# ## What this means for your choice
#
# * **Compute lambda T for your integration** (events per consumer per second
#   times the poll interval your latency target allows). Below 1, most polls
#   are wasted and push is cheaper in requests and bytes, by a factor of about
#   1/(lambda T): Zapier's 98.5 % is lambda T = 0.015, 66 requests per event.
# * **Above 1, polling is the cheaper style**: each poll carries several events,
#   and push would send one request per event (unless it batches: batched push
#   of B events crosses at lambda T = 1/B).
# * If you must poll at low lambda T, **send conditional requests** (a 304 is
#   often free against the rate limit, though it saves few bytes) and consider
#   **long polling**, which removes empty polls
#   and brings latency down to a round trip.
# * Bandwidth is rarely the deciding factor alone: weigh it with latency
#   (notebook 1), load at your number of consumers (notebook 3) and what each
#   style loses when something fails (notebook 4).
