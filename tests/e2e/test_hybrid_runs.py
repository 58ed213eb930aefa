"""The hybrid on real processes: webhooks plus a reconciling poller, run and measured as one style.

With the receiver down for a window (stopped, then restarted on the same
database and port) or dead for the rest of the run (the provider gives up on
the endpoint), every event the provider committed still reaches every
consumer, once: what push could not deliver, the reconciler read from each
consumer's own cursor feed. How many each path delivered depends on timing and
is reported, not held to a threshold; that nothing is lost and nothing is
processed twice is held.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labkit.config import RunSettings
from labkit.lab import pipeline
from labkit.results.layout import load_events, load_results
from labkit.styles.hybrid import HYBRID

pytestmark = pytest.mark.slow  # real servers for several seconds


def _run(tmp_path: Path, fault: dict[str, Any], **extra: Any) -> dict[str, Any]:
    settings = RunSettings(
        workload={"rate_per_s": 20.0, "duration_s": 4.0, "seed": 5},
        subscribers=3,
        reconcile_interval_s=0.4,
        drain_timeout_s=60,
        styles=(HYBRID.name,),
        experiment="failures",
        fault=fault,
        **extra,
    )
    return pipeline.run(settings, results_dir=tmp_path / "run").summary["styles"][HYBRID.name]


def _every_event_once(tmp_path: Path, block: dict[str, Any]) -> dict[str, Any]:
    f, rec = block["fault"], block["reconcile"]
    assert f["published"] > 0
    assert f["lost"] == 0 and block["lost"] == 0, f
    assert f["duplicates_processed"] == 0 and block["drained"]
    # each consumer holds each of its events once, brought by push or recovered by the reconciler
    assert rec["pushed"] + rec["recovered"] == block["delivered"]
    events = load_events(tmp_path / "run")
    assert len(events) == block["delivered"] and not events.duplicated(["consumer", "event_id"]).any()
    return rec


def test_receiver_down_for_a_window_loses_nothing_and_processes_nothing_twice(tmp_path: Path) -> None:
    block = _run(tmp_path, {"kind": "consumer_down", "at_s": 1.0, "duration_s": 2.0})
    rec = _every_event_once(tmp_path, block)
    assert block["fault"]["delivered"] == block["published"] * 3
    assert block["fault"]["consumer_restarts"] == 1
    # the reconciler ran on its own timetable throughout, and its cost is its own
    assert rec["polls_in_window"] > 0 and rec["requests"] > 0 and rec["bytes"] > 0
    # a push retried after the reconciler had recovered its event is counted as a duplicate, and processed once
    assert block["duplicates"] == rec["pushed_after_recovery"] + block["fault"]["duplicates_seen"]
    df = load_results(tmp_path / "run")
    assert (df["style"] == HYBRID.name).all() and (df["fault.lost"] == 0).all() and "reconcile.recovered" in df.columns


@pytest.mark.parametrize(
    "audience",
    [{"audience": "per-consumer", "consumer_skew": "zipf:1.1"}, {"audience": "topics", "topics": 4, "subscriptions": 2}],
    ids=["per-consumer", "topics"],
)
def test_receiver_dead_push_gives_up_and_the_reconciler_recovers_every_event(tmp_path: Path, audience: dict[str, Any]) -> None:
    """From 1 s the receiver answers 503 to every push: only the reconciler can deliver what follows (each consumer's own feed)."""
    block = _run(tmp_path, {"kind": "receiver_dead", "at_s": 1.0, "disable_after_s": 1000.0}, **audience)
    rec = _every_event_once(tmp_path, block)
    assert block["audience"]["misdelivered"] == 0
    # every event published after the receiver died was recorded by the reconciler, none by push
    assert rec["recovered"] > 0 and block["fault"]["recovered_by_reconciler"] == rec["recovered"]
    assert rec["pushed_after_recovery"] == 0  # a dead receiver records nothing, so no push came after a recovery
