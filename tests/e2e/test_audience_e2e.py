"""End to end: every style delivers each event to exactly the consumers of its audience, checked delivery by delivery."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import styles
from labkit.config import RunSettings, WorkloadSettings
from labkit.lab import pipeline
from labkit.lab.workload import audience_for
from labkit.provider.store import Store
from labkit.results.layout import load_events
from labkit.styles.base import unit

pytestmark = pytest.mark.slow  # real servers, four styles


def run(tmp_path: Path, **audience: object) -> tuple[pipeline.RunResult, Path, RunSettings]:
    settings = RunSettings(
        workload=WorkloadSettings(rate_per_s=15, duration_s=3, seed=5),
        styles=tuple(styles.names()),
        pollers=12,
        subscribers=12,
        poll_interval_s=0.5,
        out_dir=str(tmp_path / "results"),
        **audience,  # type: ignore[arg-type]
    )
    work = tmp_path / "work"
    return pipeline.run(settings, work_dir=work), work, settings


def check_every_delivery(result: pipeline.RunResult, work: Path, settings: RunSettings) -> None:
    events = load_events(result.results_dir)
    for name in settings.styles:
        block = result.summary["styles"][name]
        assert block["lost"] == 0 and block["duplicates"] == 0, (name, block)
        assert block["audience"]["misdelivered"] == 0, name
        logged = Store.events_routing_at(str(work / name / "provider.db"))
        consumers = unit(name).consumer_names(settings)
        plan = audience_for(settings, consumers, result.summary["workload"]["events"])
        topics = {c: set(plan.topics_of(i)) for i, c in enumerate(consumers)}
        # who should get what, from the provider's log and the plan, independently of the pipeline's count
        should = {(c, e) for e, (type_, owner) in logged.items() for c in consumers if (owner == c if owner else type_ in topics[c])}
        rows = events[events["style"] == name]
        got = {(str(c), int(e)) for c, e in zip(rows["consumer"], rows["event_id"], strict=True)}
        assert len(rows) == len(got), name  # no (consumer, event) twice
        assert got == should, name  # nothing outside a consumer's audience, nothing missing
        assert block["delivered"] == len(should) == block["audience"]["expected_deliveries"], name
        # the per-consumer figures and the audience's model, beside the run-wide ones
        audience = block["audience"]
        assert audience["consumers_with_loss"] == 0 and audience["heaviest_decile"]["latency_ms"]["count"] > 0, name
        assert block["model"]["audience"]["kind"] == "model", name
        if unit(name).info.direction == "pull":
            assert audience["polls_per_consumer"]["min"] > 0, name
            assert audience["heaviest_decile"]["model_empty_poll_ratio"] <= audience["lightest_decile"]["model_empty_poll_ratio"]
            # the run's empty-poll model is the audience's (each consumer's own feed), not one stream's e^(-lambda T)
            assert block["model"]["empty_poll_ratio"] == block["model"]["audience"]["empty_poll_ratio"], name


def test_per_consumer_zipf_every_event_reaches_exactly_its_consumer(tmp_path: Path) -> None:
    result, work, settings = run(tmp_path, audience="per-consumer", consumer_skew="zipf:1.1")
    check_every_delivery(result, work, settings)
    assert result.summary["workload"]["audience"]["kind"] == "per-consumer"


def test_topics_no_consumer_receives_an_event_outside_its_topics(tmp_path: Path) -> None:
    result, work, settings = run(tmp_path, audience="topics", topics=5, subscriptions=2)
    check_every_delivery(result, work, settings)


def test_per_consumer_streams_cut_twice_resume_each_from_its_own_cursor(tmp_path: Path) -> None:
    # every stream is cut twice and resumes after its own last id: its consumer's events only, none lost, none twice
    held = tuple(n for n in styles.names() if styles.get(n) is not None and styles.get(n).family == "stream")  # type: ignore[union-attr]
    settings = RunSettings(
        workload=WorkloadSettings(rate_per_s=20, duration_s=3, seed=5),
        styles=held,
        pollers=6,
        drain_timeout_s=30,
        experiment="failures",
        fault={"kind": "stream_drop", "at_s": [0.8, 2.0]},  # type: ignore[arg-type]
        audience="per-consumer",
        consumer_skew="zipf:1.1",
    )
    work = tmp_path / "work"
    result = pipeline.run(settings, work_dir=work, results_dir=tmp_path / "run")
    check_every_delivery(result, work, settings)
    for name in held:
        block = result.summary["styles"][name]
        f = block["fault"]
        assert f["lost"] == 0 and f["duplicates_processed"] == 0 and block["reconnects"] >= 2 * 6, (name, f)
        assert all(e["catch_up_s"] is not None for e in f["episodes"]), name
