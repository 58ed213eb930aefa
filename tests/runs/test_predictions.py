"""Predicted, then measured: the model's numbers before a run, from the settings and the calibration alone."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from labkit.config import RunSettings, WorkloadSettings
from labkit.config.network import parse_network
from labkit.model.calibration import Calibration
from labkit.runs.predictions import Candidate, beside, markdown, predict, write_predictions
from labkit.styles import unit

CAL = Calibration(
    "p1",
    {},
    "0",
    "now",
    {
        "webhook": {"delivery_s": 0.0012, "attempt_s": 0.0008},
        "polling": {"poll_s": 0.0009},
        "sse": {"frame_s": 0.001, "write_cost_s": 0.0001},
    },
)
FAR = RunSettings(network=parse_network("rtt=100ms"), workload=WorkloadSettings(rate_per_s=5, duration_s=60), poll_interval_s=0.5)


def test_a_prediction_is_the_model_a_summary_would_carry_at_the_planned_rate() -> None:
    settings = FAR.model_copy(update={"styles": ("webhook",)})
    got = predict(Candidate("webhook", "r1", "webhook", settings), CAL)
    assert got["base_source"] == "calibration p1" and got["predicted"]["connections"] > 1
    events = 300
    run = SimpleNamespace(
        deliveries={"attempts": events, "retries": 0, "deliveries": events},
        consumer_stats={"counters": {}},
        published_ids=list(range(events)),
        delivery_rtt_s=0.5,  # whatever the run measured
        events=[],
        provider_stats={},
        calibration=CAL,
    )
    summary_model = unit("webhook").summary(run, settings, events, 5.0)["model"]
    assert got["predicted"]["latency_mean_ms"] == pytest.approx(summary_model["latency_mean_ms"])
    # every style with a model predicts; one without a calibration says its base is none
    for style in ("polling", "sse"):
        assert predict(Candidate(style, "r", style, FAR.model_copy(update={"styles": (style,)})), CAL)["predicted"]["latency_mean_ms"] > 50
    assert predict(Candidate("webhook", "r", "webhook", settings), None)["base_source"] == "none"


def test_predictions_are_written_then_set_beside_the_measurements(tmp_path) -> None:
    settings = FAR.model_copy(update={"styles": ("webhook",)})
    poll = FAR.model_copy(update={"styles": ("polling",)})
    path = write_predictions(tmp_path, [Candidate("webhook", "r1", "webhook", settings), Candidate("polling", "r2", "polling", poll)], CAL)
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1 and doc["kind"] == "model" and doc["calibration"] == "calibration p1"
    web = doc["points"][0]["predicted"]["latency_mean_ms"]
    summaries = {
        "r1": {"styles": {"webhook": {"latency_ms": {"mean": web + 1.0, "sd": 10.0}, "delivered": 300, "connections_opened": 4}}},
        "r2": {"styles": {"polling": {"latency_ms": {"mean": 400.0, "sd": 144.0}, "delivered": 300}}},
    }
    rows = beside(doc, summaries)
    assert [r["label"] for r in rows] == ["webhook", "polling"]
    assert rows[0]["agrees"] is True and rows[0]["risk"] is None and rows[0]["measured_connections"] == 4
    assert rows[1]["agrees"] is False and "slower than the model" in rows[1]["risk"]
    text = markdown(rows)
    assert "Predicted, then measured" in text and "### Risks" in text and "**no**" in text
    assert beside(doc, {})[0]["measured_latency_mean_ms"] is None  # a run not made: nothing to judge


def test_a_stream_prediction_fans_an_event_out_to_its_audience_only() -> None:
    """A per-consumer event reaches one stream: its predicted wait is one stream's, not a broadcast's to all of them."""
    wl = WorkloadSettings(rate_per_s=2, duration_s=30)
    many = RunSettings(styles=("sse",), pollers=50, workload=wl)
    one = RunSettings(styles=("sse",), pollers=1, workload=wl)
    per_consumer = many.model_copy(update={"audience": "per-consumer"})

    def mean(s: RunSettings) -> float:
        return predict(Candidate("sse", "r", "sse", s), CAL)["predicted"]["latency_mean_ms"]

    assert mean(per_consumer) == pytest.approx(mean(one))
    # a broadcast to 50 streams waits, on average, for half the other 49 writes (0.1 ms each)
    assert mean(many) == pytest.approx(mean(one) + 49 * 0.1 / 2)


def test_a_webhook_prediction_counts_the_deliveries_its_audience_makes() -> None:
    """Connections by Little's law follow the deliveries per second: a broadcast to 40 makes 40 times a per-consumer's."""
    wl = WorkloadSettings(rate_per_s=20, duration_s=30)
    broadcast = FAR.model_copy(update={"styles": ("webhook",), "subscribers": 40, "workload": wl})
    per_consumer = broadcast.model_copy(update={"audience": "per-consumer"})

    def connections(s: RunSettings) -> float:
        return predict(Candidate("webhook", "r", "webhook", s), CAL)["predicted"]["connections"]

    assert connections(broadcast) > connections(per_consumer)
