"""Delivery styles are units found through the registry; settings a style cannot honour are refused."""

from __future__ import annotations

import numpy as np
import pytest

from labkit import styles
from labkit.config import RunSettings, validated
from labkit.errors import ConfigError
from labkit.report import terms
from labkit.styles.base import Style
from labkit.styles.registry import StyleInfo


def test_shipped_styles_are_runnable_units_with_their_info():
    assert styles.names() == ("webhook", "polling", "sse", "websocket")
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


def test_a_registered_style_is_accepted_by_run_settings():
    class Pigeon(Style):
        info = StyleInfo("pigeon-test", "carrier pigeon", "#000000", "x", "push", False, "leg band", order=99)

        def consumer_names(self, settings):
            return ["coop"]

        async def start_consumer(self, lab):
            raise NotImplementedError

        async def counters_now(self, lab):
            return {}

        def summary(self, run, settings, per, rate):
            return {}

        def fault_measures(self, counters, deliveries, retry):
            return {}

        def variant(self, setting, assumes):
            return "pigeon"

        def project(self, scale):
            return 1.0 / scale.batch, "pigeon"

    unit = Pigeon()
    styles.register(unit.info, unit)
    try:
        settings = RunSettings(styles=("webhook", "pigeon-test"))
        styles.check(settings)  # a registered style is a known one
        assert settings.styles == ("webhook", "pigeon-test")
        assert styles.unit("pigeon-test") is unit
        # the projection and the figure's curve come from its one ``project``; no curve without a label
        assert unit.projected_requests_per_event(10.0, 5.0, 4, 0.0, 0.0, None) == (0.25, "pigeon")
        assert unit.model_requests_per_event(np.array([1.0, 2.0]), 2) is None
    finally:
        styles.registry.unregister("pigeon-test")
    assert "pigeon-test" not in styles.names()


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


def test_the_stream_styles_share_one_unit_told_their_protocol() -> None:
    from labkit.styles.stream import StreamStyle

    for name in ("sse", "websocket"):
        unit = styles.unit(name)
        assert isinstance(unit, StreamStyle) and unit.protocol == name and unit.info.direction == "push"
        assert not unit.info.needs_public_endpoint


def _style_run(style: str, counters: dict, window: dict) -> object:
    from labkit.lab.session import StyleRun

    events = [(style, "c0", i, 0, 1_000_000) for i in range(1, 101)]
    return StyleRun(
        style=style,
        published_ids=list(range(1, 101)),
        publish_errors=0,
        publish_lateness_ms={},
        consumers=["c0"],
        drained=True,
        drain_s=0.1,
        provider_cpu_s=1.0,
        consumer_cpu_s=1.0,
        consumer_stats={"counters": counters, "wire": {"bytes_in": 1000, "bytes_out": 500}},
        deliveries={"attempts": 100, "retries": 0, "deliveries": 100},
        delivery_rtt_s=0.002,
        events=events,
        window_counters=window,
    )


def test_summaries_take_the_window_counters_for_every_run():
    from labkit.lab.pipeline import summarise_style

    settings = RunSettings(workload={"rate_per_s": 10.0, "duration_s": 10.0}, poll_interval_s=1.0)
    # 40 polls over the whole run, 10 of them in the workload window, 4 of those empty
    polling = summarise_style(
        _style_run("polling", {"polls": 40, "empty_polls": 30, "requests": 40}, {"polls": 10, "empty_polls": 4, "requests": 10}),
        settings,
    )
    assert polling["requests_per_event"] == pytest.approx(0.1) and polling["requests_per_event_whole_run"] == pytest.approx(0.4)
    assert polling["empty_poll_ratio"] == pytest.approx(0.4) and polling["requests_in_window"] == 10
    assert polling["model"]["requests_per_event"] == pytest.approx(0.1)
    webhook = summarise_style(_style_run("webhook", {"requests": 100}, {"requests": 100}), settings)
    assert webhook["requests_per_event"] == pytest.approx(1.0) and webhook["attempts"] == 100
    assert webhook["model"]["latency_mean_ms"] == pytest.approx(2.0)
    assert "empty_poll_ratio" not in webhook


def test_each_style_adds_its_own_provider_settings():
    settings = RunSettings(batch_max_events=10, thin_events=True, poll_interval_s=2.0)
    assert styles.unit("webhook").provider_settings(settings)["batch_max_events"] == 10
    assert styles.unit("webhook").provider_settings(settings)["thin_events"] is True
    assert styles.unit("polling").provider_settings(settings) == {"poll_interval_hint_s": 2.0}
