"""Failure measures, kept importable here; they live with the pipeline in ``labkit.lab.measures``."""

from __future__ import annotations

from labkit.lab.measures import Episode, catch_up_s, first_received, latency_summary, lost, merge_counters, retry_effect, split_latency

__all__ = ["Episode", "catch_up_s", "first_received", "latency_summary", "lost", "merge_counters", "retry_effect", "split_latency"]
