"""Delivery styles are units found through the registry; settings a style cannot honour are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labkit import styles
from labkit.config import EVENT_STREAM, WS, RunSettings, validated
from labkit.errors import ConfigError
from labkit.report import terms
from labkit.styles.base import Style
from labkit.styles.registry import StyleInfo, Variant
from labkit.styles.stream import StreamStyle
from tests.helpers.runs import style_run

REPO = Path(__file__).resolve().parents[2]


def test_shipped_styles_are_runnable_units_with_their_info():
    assert styles.names() == ("webhook", "polling", "sse", "websocket", "hybrid")
    for info in styles.all_styles():
        unit = styles.unit(info.name)
        assert isinstance(unit, Style) and unit.info is info


def test_unknown_style_is_refused_with_one_line_naming_it():
    with pytest.raises(ConfigError) as exc:
        styles.check(validated(RunSettings, {"styles": ["carrier-pigeon"]}))
    assert "carrier-pigeon" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ConfigError):
        styles.unit("carrier-pigeon")


def test_fault_run_with_the_snapshot_feed_is_refused_naming_snapshot():
    with pytest.raises(ConfigError) as exc:
        styles.check(validated(RunSettings, {"styles": ["polling"], "snapshot": True, "fault": {"kind": "consumer_kill"}}))
    assert "snapshot" in str(exc.value) and "\n" not in str(exc.value)
    assert validated(RunSettings, {"styles": ["polling"], "snapshot": True}).snapshot  # a plain run keeps it


def test_variants_are_named_by_their_style():
    webhook, polling = styles.unit("webhook"), styles.unit("polling")
    settings = {"batch_max_events": 10, "long_poll_wait_s": 5.0}
    assert webhook.variant(settings.get, "") == "batched webhooks"
    assert polling.variant(settings.get, "") == "long polling"
    # the plain variants carry the report's option names
    assert webhook.variant({}.get, "") == terms.WEBHOOK
    assert polling.variant({}.get, "") == terms.POLLING
    assert polling.variant({}.get, "long polling: ...") == terms.LONG_POLLING


class Pigeon(StreamStyle):
    """A foreign style, registered by a test: a held stream that borrows the SSE consumer fleet.

    Nothing outside this file names it: the sweep, the figures and the decision report find it
    through the registry, by its family (stream) and its declared variant.
    """

    def __init__(self) -> None:
        info = StyleInfo(
            "pigeon-test",
            "carrier pigeon",
            "#000000",
            "x",
            "push",
            False,
            "leg band",
            order=99,
            variants=(Variant("carrier pigeon", "carrier pigeon", "stream"),),
        )
        super().__init__(info, transport=EVENT_STREAM)

    def variant(self, setting, assumes):
        return "carrier pigeon"

    def project(self, scale):
        return 1.0 / scale.batch, "pigeon"

    def model_curve_label(self, batch):
        return None


@pytest.fixture
def pigeon():
    unit = Pigeon()
    styles.register(unit.info, unit)
    try:
        yield unit
    finally:
        styles.registry.unregister(unit.name)
    assert unit.name not in styles.names()


def test_a_registered_style_is_accepted_by_run_settings(pigeon):
    settings = RunSettings(styles=("webhook", "pigeon-test"))
    styles.check(settings)  # a registered style is a known one
    assert settings.styles == ("webhook", "pigeon-test")
    assert styles.unit("pigeon-test") is pigeon
    # the projection and the figure's curve come from its one ``project``; no curve without a label
    assert pigeon.projected_requests_per_event(10.0, 5.0, 4, 0.0, 0.0, None) == (0.25, "pigeon")
    assert pigeon.model_requests_per_event(np.array([1.0, 2.0]), 2) is None
    # its declared variant is an option of its family, after the shipped ones
    assert pigeon.info.family == "stream" and styles.options("stream")[-1] == "carrier pigeon"
    assert "carrier pigeon" in terms.options() and "carrier pigeon" in terms.family_options("stream")


def test_the_report_vocabulary_is_the_registered_variants():
    assert terms.OPTIONS == terms.options()
    for option in (terms.WEBHOOK, terms.THIN):
        assert option in styles.options("push")
    for option in (terms.POLLING, terms.LONG_POLLING):
        assert option in styles.options("pull")
    assert terms.STREAM_FAMILY == tuple(styles.get(n).label for n in styles.styles_of("stream"))
    # a variant that is only evidence (batched webhooks) is no option, yet counts for its family
    assert "batched webhooks" in terms.family_variants("push") and "batched webhooks" not in terms.options()
    assert terms.measured_as(terms.THIN) == ("thin webhooks",)
    assert styles.styles_of("push") == ("webhook", "hybrid") and styles.styles_of("pull") == ("polling",)


def test_an_unmeasured_foreign_style_is_weighed_in_the_options_table_in_registry_order(pigeon):
    """No run measured the foreign stream: the decision still lists it, after the shipped streams, before the hybrids."""
    import pandas as pd

    from labkit.report import decide, load_requirements
    from labkit.results.layout import load_results

    fixtures = REPO / "tests" / "fixtures" / "report"
    results = pd.concat([load_results(fixtures / "compare"), load_results(fixtures / "sweep")], ignore_index=True)
    for name in ("payments-provider", "mobile-app-behind-nat"):
        rec = decide(load_requirements(REPO / "scenarios" / "requirements" / f"{name}.toml"), results)
        listed = [option for option, _ in rec.rejected]
        assert "carrier pigeon" in listed, listed
        assert listed.index("carrier pigeon") == listed.index(terms.THIN) - 1
        assert listed.index("carrier pigeon") > max(listed.index(o) for o in terms.STREAM_FAMILY)


def _foreign(base: type, family: str, direction: str, endpoint: bool, order: int) -> Style:
    """A foreign style of ``family`` that borrows a shipped unit's consumer, registered under its own name and variant."""
    label = f"pigeon {family}"
    info = StyleInfo(
        f"pigeon-{family}", label, "#111111", "x", direction, endpoint, "leg band", order=order, variants=(Variant(label, label, family),)
    )
    return type(f"Pigeon{family.title()}", (base,), {"info": info, "variant": lambda self, setting, assumes: label})()


def test_foreign_styles_of_every_family_are_rows_of_the_options_table(pigeon):
    """Push, pull and stream alike: the decision lists each registered option, measured or not."""
    import pandas as pd

    from labkit.report import decide, load_requirements
    from labkit.results.layout import load_results
    from labkit.styles.polling import Polling
    from labkit.styles.webhook import Webhook

    units = [_foreign(Webhook, "push", "push", True, 97), _foreign(Polling, "pull", "pull", False, 98)]
    for unit in units:
        styles.register(unit.info, unit)
    try:
        assert [u.info.family for u in units] == ["push", "pull"]
        fixtures = REPO / "tests" / "fixtures" / "report"
        results = pd.concat([load_results(fixtures / "compare"), load_results(fixtures / "sweep")], ignore_index=True)
        for name in ("payments-provider", "mobile-app-behind-nat"):
            rec = decide(load_requirements(REPO / "scenarios" / "requirements" / f"{name}.toml"), results)
            listed = [rec.option, *(option for option, _ in rec.rejected)]
            assert {"pigeon push", "pigeon pull", "carrier pigeon"} <= set(listed), listed
    finally:
        for unit in units:
            styles.registry.unregister(unit.name)


def _relabelled_stream_run(src, dest, old: str, new: str):
    """A copy of a committed stream run whose ``old`` style block is reported as style ``new``."""
    import shutil

    import pandas as pd

    shutil.copytree(src, dest)
    summary = json.loads((dest / "summary.json").read_text())
    summary["styles"] = {new if k == old else k: v for k, v in summary["styles"].items()}
    summary["settings"]["styles"] = [new if s == old else s for s in summary["settings"]["styles"]]
    (dest / "summary.json").write_text(json.dumps(summary))
    events = pd.read_parquet(dest / "events.parquet")
    events["style"] = events["style"].replace(old, new)
    events.to_parquet(dest / "events.parquet")
    return dest


def test_a_foreign_style_reaches_the_figures_and_the_options_table(pigeon, tmp_path, monkeypatch):
    """A committed stream run whose SSE block is reported as the foreign style: the report finds it by the registry.

    One real figure is drawn here; the report's own figures are stand-ins (the slow real-sweep test draws them all).
    """
    import sys

    from labkit.analysis import figures
    from labkit.report import load_requirements, write_report
    from labkit.results.layout import load_results
    from tests.helpers.report import stand_in_figures

    fixtures = REPO / "tests" / "fixtures" / "report"
    run = _relabelled_stream_run(fixtures / "streams" / "20250303T100000000000Z-s11", tmp_path / "runs" / "pigeon-run", "sse", pigeon.name)
    rows = load_results(run)
    assert pigeon.name in set(rows["style"])
    legend = [t.get_text() for ax in figures.summary_bars(rows).axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]
    assert any(pigeon.name in text for text in legend)
    req = load_requirements(REPO / "scenarios" / "requirements" / "mobile-app-behind-nat.toml")
    monkeypatch.setitem(sys.modules, "labkit.analysis.figures", stand_in_figures())
    paths = write_report([fixtures / "compare", fixtures / "sweep", run], tmp_path / "report", req)
    options = paths.markdown.read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    assert "carrier pigeon" in options, options


def test_projection_and_model_curve_come_from_one_model_per_style() -> None:
    from labkit import model

    grid = np.array([0.1, 1.0, 250.0])
    push, label = styles.unit("webhook").model_requests_per_event(grid, 4)
    assert list(push) == [0.25] * 3 and label == "model: push 1/B (B = 4)"
    assert styles.unit("webhook").projected_requests_per_event(10.0, 5.0, 2, 0.5, 0.0, 100) == (
        0.75,
        "push, 2 event(s) per request, 0.5 retries per event",
    )
    poll, _ = styles.unit("polling").model_requests_per_event(grid, 1)
    assert list(poll) == [model.polling_requests_per_event(x, 1.0, 100) for x in grid]
    assert styles.unit("polling").projected_requests_per_event(10.0, 5.0, 1, 0.0, 0.0, 100) == (0.02, "polling every 5 s")
    rpe, variant = styles.unit("polling").projected_requests_per_event(10.0, 5.0, 1, 0.0, 30.0, 100)
    assert rpe == model.long_poll_requests_per_event(10.0, 30.0) and variant == "long polling, waits up to 30 s"
    for name in ("sse", "websocket"):
        curve, label = styles.unit(name).model_requests_per_event(grid, 1)
        assert list(curve) == [0.0] * 3 and styles.unit(name).info.label in label
        assert styles.unit(name).projected_requests_per_event(10.0, 5.0, 1, 0.0, 0.0, 100)[0] == 0.0


def test_the_stream_styles_share_one_unit_told_their_transport() -> None:
    from labkit.styles.stream import StreamStyle

    for name, transport in (("sse", EVENT_STREAM), ("websocket", WS)):
        unit = styles.unit(name)
        assert isinstance(unit, StreamStyle) and unit.transport == transport and unit.info.direction == "push"
        assert not unit.info.needs_public_endpoint


def test_summaries_take_the_window_counters_for_every_run():
    from labkit.lab.pipeline import summarise_style

    settings = RunSettings(workload={"rate_per_s": 10.0, "duration_s": 10.0}, poll_interval_s=1.0)
    # 40 polls over the whole run, 10 of them in the workload window, 4 of those empty
    polling = summarise_style(
        style_run("polling", {"polls": 40, "empty_polls": 30, "requests": 40}, {"polls": 10, "empty_polls": 4, "requests": 10}),
        settings,
    )
    assert polling["requests_per_event"] == pytest.approx(0.1) and polling["requests_per_event_whole_run"] == pytest.approx(0.4)
    assert polling["empty_poll_ratio"] == pytest.approx(0.4) and polling["requests_in_window"] == 10
    assert polling["model"]["requests_per_event"] == pytest.approx(0.1)
    webhook = summarise_style(style_run("webhook", {"requests": 100}, {"requests": 100}), settings)
    assert webhook["requests_per_event"] == pytest.approx(1.0) and webhook["attempts"] == 100
    # no calibration on a bare StyleRun: the model's base is none (0), and says so
    assert webhook["model"]["latency_mean_ms"] == pytest.approx(0.0) and webhook["model"]["base_source"] == "none"
    assert "empty_poll_ratio" not in webhook


def test_a_webhook_run_that_published_nothing_is_summarised():
    """A run whose workload drew no event (or whose publishes all failed): zeros, not a ZeroDivisionError."""
    from labkit.lab.pipeline import summarise_style

    settings = RunSettings(workload={"rate_per_s": 0.01, "duration_s": 1.0})
    empty = style_run("webhook", {"requests": 0}, {"requests": 0}, events=0)
    webhook = summarise_style(empty, settings)
    assert webhook["published"] == 0 and webhook["delivered"] == 0 and webhook["lost"] == 0
    assert webhook["model"]["requests_per_event"] == pytest.approx(1.0)


def test_each_style_adds_its_own_provider_settings():
    settings = RunSettings(batch_max_events=10, thin_events=True, poll_interval_s=2.0)
    assert styles.unit("webhook").provider_settings(settings)["batch_max_events"] == 10
    assert styles.unit("webhook").provider_settings(settings)["thin_events"] is True
    assert styles.unit("polling").provider_settings(settings) == {"poll_interval_hint_s": 2.0}


FOREIGN_SWEEP = """
[experiment]
name = "foreign"
seed = 7
[run]
styles = ["polling", "pigeon-test"]
poll_interval_s = 0.25
drain_timeout_s = 10
[workload]
arrival = "poisson"
rate_per_s = 8.0
duration_s = 1.5
payload_bytes = 128
"""


@pytest.mark.slow  # a real sweep point: a provider, a poller fleet and the foreign style's stream fleet on loopback
def test_a_foreign_style_runs_through_a_real_sweep_into_the_figures_and_the_options_table(pigeon, tmp_path):
    from labkit.analysis import figures
    from labkit.report import load_requirements, write_report
    from labkit.runs.experiments import load_experiment
    from labkit.runs.sweep import load_table, run_sweep

    path = tmp_path / "foreign.toml"
    path.write_text(FOREIGN_SWEEP)
    result = run_sweep(load_experiment(path, out_dir=tmp_path / "results"))
    table = load_table(result.results_dir)
    row = table[table["style"] == pigeon.name].iloc[0]
    assert row["published"] > 0 and row["delivered"] == row["published"] and row["lost"] == 0
    legend = [t.get_text() for ax in figures.summary_bars(table).axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]
    assert any(pigeon.name in text for text in legend)
    req = load_requirements(REPO / "scenarios" / "requirements" / "mobile-app-behind-nat.toml")
    paths = write_report([result.results_dir], tmp_path / "report", req)
    options = paths.markdown.read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    assert "carrier pigeon" in options, options
