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
# # 6. From requirements to a decision report
#
# Notebooks 1-5 measured the trade-off. An architect needs a document a team
# can act on: *for our numbers, choose X, because of these measurements; here
# is what it costs at our scale; here is how to reproduce it.* That is what
# `labkit report` writes (`labkit.report.write_report` here): a recommendation
# among webhook push, polling, long polling and two hybrids, each reason traced
# to a measured number and to one of the article's four factors (latency,
# versatility of the data exchange, security, fit to the use case), the figures,
# a projection at your scale, the risks, and a reproduction appendix.
#
# A report only reads results; it never runs anything.

# %%
import pandas as pd

import labkit
from labkit import figures
from labkit import notebook as nb
from labkit.report import Requirements, decide, load_requirements, write_report

nb.setup()

# %% [markdown]
# ## The measurements
#
# The report reads what notebooks 1-3 wrote (the compare run, the lambda T
# sweep, the delivery variants, the consumer sweep). Run those first for a
# well-founded report; if none of them has run yet, a short compare run is made
# here instead, and the report will say which runs would settle what it cannot.

# %% tags=["parameters"]
# Papermill parameters (papermill -p NAME VALUE). Quick mode is the environment variable LABKIT_QUICK=1.
FALLBACK_DURATION_S = nb.params(full=30.0, quick=3.0)  # the short compare run made when 01-03 have not run

# %%
fallback = labkit.RunSettings(
    workload=labkit.WorkloadSettings(arrival="poisson", rate_per_s=10.0, duration_s=FALLBACK_DURATION_S, seed=1),
    poll_interval_s=1.0,
)
sources = nb.report_inputs(fallback)
results = nb.report_results(sources)
print("\n".join(str(path) for path in sources))
results.groupby(["experiment", "style"]).size().rename("runs")

# %%
figures.summary_bars(results)

# %% [markdown]
# ## Your requirements
#
# A `Requirements` object holds one integration's needs; every field is
# optional and validated (the same keys as a requirements TOML file, see
# `scenarios/requirements/`). Edit these to your case:

# %%
requirements = Requirements(
    name="Order updates for partner shops",
    use_case="order status changes sent to partner shops' back-office systems",
    target_latency_p99_ms=500.0,  # the shop's staff see a paid order within half a second
    event_rate_per_s=0.2,  # events each consumer receives per second
    burstiness="bursty",
    consumers=5000,  # partner shops
    consumers_can_expose_https=True,  # shops run a public HTTPS endpoint
    data_sensitivity="sensitive",
    ordering="per-key",
    missed_events_tolerated=False,
    duplicates_tolerated=False,
)
nb.recommendation_markdown(decide(requirements, results))

# %% [markdown]
# The same measurements lead elsewhere when the requirements differ. The three
# profiles shipped with labkit: a payments provider, a mobile app whose phones
# sit behind NAT (no endpoint a webhook could reach), an internal batch sync:

# %%
profiles = sorted((nb.scenarios_dir() / "requirements").glob("*.toml"))
pd.DataFrame(
    [{"requirements": path.name, "recommendation": decide(load_requirements(path), results).option} for path in profiles]
)

# %% [markdown]
# Change the main requirements and watch the decision follow: tighten the
# latency target, raise the event rate until lambda T passes 1, or untick
# "consumers can expose HTTPS".

# %%
nb.requirements_explorer(results, requirements)

# %% [markdown]
# ## The report
#
# One self-contained HTML file (figures inline, nothing fetched from the
# network: it can be mailed or attached to a ticket) and a Markdown twin with
# its figures beside it. From a shell the same report is
# `labkit report results/notebooks/nb01-latency ... --requirements FILE -o DIR`.

# %%
report = write_report(sources, nb.results_root() / "nb06-report", requirements=requirements)
print("HTML:    ", report.html)
print("Markdown:", report.markdown)
nb.show_report(report.html)

# %% [markdown]
# ## What this means for your choice
#
# * The recommendation is only as good as the runs behind it: the report lists
#   what they do not cover (a rate never run, a number of consumers never
#   tried) and the command that would settle each gap. Run those, on hardware
#   like yours, before committing.
# * The four factors rarely point the same way. Latency and sparse events favour
#   push; consumers that cannot expose an endpoint, or that must own their
#   position in the stream, favour polling or long polling; "nothing may be
#   missed" favours a hybrid: webhooks for speed, plus polling or replay to
#   reconcile.
# * Hand the HTML to the team: it carries the numbers, the model beside them,
#   the projection (labelled as such), the risks of the choice and how to
#   reproduce every run.
