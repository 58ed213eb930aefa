"""Analysis of finished runs: cost fits and projections, figures, summary and failure tables.

Everything here reads results (``labkit.results``) and the style registry; nothing
starts a server or runs a workload.
"""
