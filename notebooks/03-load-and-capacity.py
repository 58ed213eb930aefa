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
# # 3. Load and capacity: what does each style cost the servers?
#
# Notebooks 1 and 2 followed one consumer. A provider has many. The two styles
# grow in different ways:
#
# * **push**: N subscribers mean N signed requests per event; the provider's
#   work follows **N x lambda** (deliveries per second), and is zero when
#   nothing happens;
# * **polling**: N pollers send **N / T** requests per second whatever the
#   event rate; the provider's work follows the clock, not the events.
#
# This notebook measures that on real servers (a sweep over the number of
# consumers), runs a short **Locust** capacity test to find how many pollers one
# provider instance holds, and fits a cost model to project the servers and
# bandwidth needed at a scale this machine cannot run.

# %%
from labkit import figures
from labkit import notebook as nb
from labkit.analysis import calibration
from labkit.capacity import capacity_curve, load_capacity

nb.setup()

# %% [markdown]
# ## Cost against the number of consumers
#
# One event stream (5 events/s, Poisson), delivered to 1 and more consumers:
# subscribers for push (one receiver process stands in for all of them),
# pollers for polling (one process runs the whole fleet).

# %% tags=["parameters"]
# Papermill parameters (papermill -p NAME VALUE). Quick mode is the environment variable LABKIT_QUICK=1.
CONSUMERS = nb.params(full=[1, 10, 50], quick=[1, 8])  # the sweep's numbers of consumers
POLL_INTERVAL_S = nb.params(full=1.0, quick=0.5)
DURATION_S = nb.params(full=20.0, quick=3.0)  # seconds of publishing per point
MAX_USERS = nb.params(full=600, quick=20)  # the capacity test's largest step
CAPACITY_DURATION_S = nb.params(full=150.0, quick=12.0)

# %%
consumers = nb.experiment(
    "cost-vs-consumers",
    name="nb03-consumers",
    run={"consumers": CONSUMERS, "poll_interval_s": POLL_INTERVAL_S},
    workload={"rate_per_s": 5.0, "duration_s": DURATION_S},
)
table = nb.sweep(consumers)
table["requests_per_s"] = table["requests"] / table["workload.duration_s"]
table[["consumers", "style", "delivered", "requests", "requests_per_s", "requests_per_event", "bytes_per_event",
       "provider_cpu_s", "consumer_cpu_s", "latency_ms.p99"]]

# %% [markdown]
# Read the columns: `requests_per_event` is per consumer, so it stays put while
# `requests` grows with the consumers in both styles. What differs is what the
# requests buy: each push carries an event, most polls at this lambda T carry
# nothing. CPU per delivered event (the figure; start-up excluded) shows where
# each style spends; the dashed lines are a cost model fitted to these runs.

# %%
figures.cpu_vs_consumers(table)

# %% [markdown]
# ## A capacity test with Locust
#
# How many pollers can one provider instance serve? `labkit capacity` (here
# through `nb.capacity`, which calls `labkit.capacity.run_capacity`) starts a
# provider on loopback, fills its log, publishes a trickle of events, and runs
# Locust in steps: every step adds pollers, each polling every `interval_s`
# with `If-None-Match`, until the p99 latency or the failure rate breaks the
# SLO, or `max_users` is reached. The same runs from a shell:
# `labkit capacity polling --max-users 200 --duration 60`; Locust's own HTML
# report and CSV files land in the results folder.

# %%
capacity = nb.capacity(
    scenario="polling",
    slo_p99_ms=100.0,
    max_users=MAX_USERS,
    duration_s=CAPACITY_DURATION_S,
    interval_s=nb.params(full=0.1, quick=0.1),
    step_seconds=nb.params(full=10.0, quick=3.0),
)
print(capacity.summary["statement"])
print(f"limited by: {capacity.summary['limited_by']}: {capacity.summary['reason']}")
print(f"Locust's report: {capacity.results_dir / 'locust_report.html'}")

# %% [markdown]
# ### How to read it
#
# * **Left**: p99 latency at each step against the SLO (dashed). The ringed
#   step is the capacity: the most users whose p99 and failure rate met it.
# * **Right**: throughput (requests/s) should grow in step with users (each
#   adds 1/T requests a second); where it flattens while latency climbs, the
#   server is saturated. Server CPU (% of one core; the provider is one
#   process) tells you whether CPU is the limit.
# * **Locust's own CPU** (grey) must stay well below 100 %: a saturated load
#   generator measures itself, not the server. The verdict says so when it happens.
# * "max users (a lower bound)" means no step broke the SLO: the server holds
#   at least that much; raise `max_users` to find the limit.

# %%
capacity_curve(load_capacity(capacity.results_dir))

# %%
capacity.steps[["step", "users", "rps", "p99_ms", "failure_ratio", "server_cpu_percent", "load_generator_cpu_percent", "met_slo"]]

# %% [markdown]
# ## Projecting to a scale this machine cannot run
#
# `calibration.fit_costs` fits, for each style, what a request and a delivered
# event cost in CPU-seconds and bytes over the runs of the sweep above
# (least squares, costs held non-negative; the notes say which costs these
# runs could not tell apart). `calibration.project` scales those costs to a
# target load. **Every number below is a projection**, as good as the fit and
# the assumption that costs grow linearly; it says which runs it came from.

# %%
fitted = calibration.fit_costs(table)
nb.calibration_frame(fitted)

# %%
projection = calibration.project(fitted, consumers=100_000, rate_per_s=50.0, poll_interval_s=1.0)
print("PROJECTION:", projection["assumes"])
nb.projection_frame(projection)

# %% [markdown]
# Move the scale: consumers, their event rate and the poll interval. Watch
# polling's requests per second follow consumers / T while push's follow
# consumers x rate, and the two swap places as lambda T crosses 1.

# %%
nb.projection_explorer(fitted, consumers=100_000, rate_per_s=50.0, poll_interval_s=1.0)

# %% [markdown]
# ## What this means for your choice
#
# * **Many consumers, rare events: push.** Polling load is consumers / T
#   requests a second even when nothing happens; with 100,000 consumers polling
#   every second that is 100,000 requests a second to serve mostly empty answers.
# * **Many consumers, frequent events (lambda T > 1): polling gets cheaper**,
#   because each poll carries several events, while push still sends one signed
#   request per event per subscriber (batching helps push: 1/B).
# * **Capacity is measured, not guessed**: the Locust step test gives "one
#   provider holds N pollers at T within a p99 of X ms" on your hardware; the
#   projection tells you how many such servers a target scale needs, labelled
#   as a projection. Rerun the capacity test at your own T and SLO before planning.
# * Push moves the load to the provider's dispatcher and to each subscriber's
#   endpoint, which must absorb bursts; polling keeps each consumer in control
#   of its own load. Notebook 4 shows what each style does when a side fails.
