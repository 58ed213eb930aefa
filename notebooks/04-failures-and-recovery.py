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
# # 4. Failures and recovery: what is lost, repeated and delayed?
#
# Latency and bandwidth are measured on good days. Integrations are chosen for
# the bad ones. The two styles put the memory of "what has been delivered" in
# different places:
#
# * **push**: the *provider* remembers. Its outbox keeps every delivery until the
#   receiver answers 2xx, retrying on a schedule (the Standard Webhooks example:
#   immediately, 5 s, 5 min, 30 min, 2 h, ...; compressed 1000x in the lab). A
#   retry carries the same `webhook-id`, so the receiver can drop duplicates.
# * **polling**: the *consumer* remembers: its cursor in the provider's event log.
#   A poller that restarts resumes from its stored cursor; a provider that is down
#   answers no polls, and the next poll after it returns catches up.
#
# Here real processes are broken on purpose (SIGTERM, SIGKILL, restart on the
# same database) while a seeded workload runs, for both styles, and the lab
# counts what arrived, what arrived twice, and how long catching up took.

# %%
from labkit import figures
from labkit import notebook as nb

nb.setup()

# %% [markdown]
# ## The faults
#
# The failure experiment (`scenarios/experiments/failures.toml`, also run by
# `labkit failures`) declares one fault per variant. Quick mode keeps three and
# shortens the run; full mode runs all of them (about 3 minutes):
#
# | fault | push (webhook) | polling |
# |---|---|---|
# | `consumer-down` | the receiver is stopped for 2 s, then restarted | the poller is stopped for 2 s, then restarted |
# | `consumer-killed` | the receiver is SIGKILLed and restarted | the poller is SIGKILLed and restarted (poller restart) |
# | `provider-killed` | the provider is SIGKILLed mid-dispatch and restarted | the provider is SIGKILLed and restarted |
# | others (full mode) | slow receiver, 5xx, 429, 410 Gone, a bad network | 429 throttling, a bad network |

# %% tags=["parameters"]
# Papermill parameters (papermill -p NAME VALUE). Quick mode is the environment variable LABKIT_QUICK=1.
FAULTS = nb.params(
    full=["baseline", "consumer-down", "consumer-killed", "provider-killed", "receiver-slow", "receiver-5xx", "throttled", "receiver-gone", "bad-network"],
    quick=["consumer-down", "consumer-killed", "provider-killed"],
)
DURATION_S = nb.params(full=5.0, quick=4.0)  # seconds of publishing per fault

# %%
failures = nb.experiment(
    "failures",
    name="nb04-failures",
    only=FAULTS,
    workload={"duration_s": DURATION_S},
)
table = nb.sweep(failures)
outcomes = nb.fault_table(table)
outcomes[["fault", "style", "published", "delivered", "lost", "duplicates_seen", "duplicates_processed", "retries",
          "retry_delay_added_ms", "outage_s", "catch_up_s", "latency_p99_ms"]]

# %% [markdown]
# How to read the table:
#
# * **lost**: events the provider committed that never reached the consumer.
#   Both styles should show 0 for every fault here; the one exception by
#   design is `receiver-gone` (a 410 tells the provider to disable the endpoint).
# * **duplicates seen / processed**: a delivery that arrived again (push: the
#   provider was killed after the receiver processed a delivery but before it
#   recorded the 2xx, so it sends it again). *Seen* is normal for at-least-once
#   delivery; *processed* must stay 0, and does, because the receiver keys on
#   `webhook-id` and the poller on its cursor.
# * **retries** and **retry delay**: push pays for an outage in retries, each
#   waiting for the next step of the schedule; polling simply polls again.
# * **catch-up**: seconds from the end of the fault until the consumer held
#   every event published before it.

# %% [markdown]
# ## A crash, event by event
#
# Each dot is one event: when it was created and how long it took to reach the
# consumer, for the consumer crash. Shaded: the outage (dark) and the time
# until the consumer had caught up (light). The events published during the
# outage arrive in a burst afterwards: for push when the retry schedule next
# tries (the delay grows with the schedule), for polling at the first poll
# after the restart.

# %%
killed = table[table["param.variant"] == "consumer-killed"]
figures.latency_timeline(nb.events(killed), killed, log=True)

# %% [markdown]
# Pick any other fault:

# %%
nb.fault_explorer(table, nb.events(table))

# %% [markdown]
# ## The price of each fault
#
# Mean latency, requests and bytes per event for every fault and style. Push's
# requests per event rise above 1 with every retry the receiver answers (a
# 5xx, a 429, a timeout); attempts that found the receiver down never reached
# it, so they show only in the model's mark (dashed), which counts the
# provider's attempts. Polling's requests stay where its poll interval puts them.

# %%
figures.variant_bars(table, title="What each fault cost each style")

# %% [markdown]
# ## What this means for your choice
#
# * **Neither style has to lose events**, but they get there differently. Push
#   needs a durable outbox, retries with backoff, and an idempotent receiver
#   (de-duplicate by `webhook-id`): at-least-once delivery means duplicates *will*
#   arrive. Polling needs a durable event log with a cursor, and a consumer that
#   stores its cursor only after processing.
# * **Recovery time differs.** A polling consumer catches up at its next poll,
#   at its own pace. A push receiver that was down waits for the provider's next
#   retry, and real schedules stretch to minutes and hours (the lab compresses
#   them 1000x); after a 410 or too many failures, push stops for good.
# * **Plan reconciliation for push.** The hybrid the reports recommend for
#   "nothing may be missed": webhooks for speed, plus an occasional poll of the
#   event log (or a replay, `POST /subscriptions/{id}/replay`) to fill any gap.
# * If your consumers are often offline (mobile, laptops, batch jobs), the
#   polling model, where the consumer owns its position, fits better.
