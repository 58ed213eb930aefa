"""load_results and load_events on the committed fixture tree: shape, columns, values."""

from __future__ import annotations

import pytest

from labkit.results.layout import load_events, load_results
from tests.helpers.paths import FIXTURE


@pytest.fixture(scope="module")
def df():
    return load_results(FIXTURE)


def test_one_row_per_point_and_style(df):
    assert len(df) == 6
    assert df.groupby("point").size().to_dict() == {p: 2 for p in df["point"].unique()}
    assert set(df["style"]) == {"webhook", "polling"}
    assert df["point"].nunique() == 3 and (df["experiment"] == "fixture-lambda-t").all()


def test_measured_model_and_param_columns_side_by_side(df):
    for col in (
        "param.rate_per_s",
        "param.duration_s",
        "workload.lambda_t",
        "latency_ms.mean",
        "model.latency_mean_ms",
        "requests_per_event",
        "model.requests_per_event",
        "empty_poll_ratio",
        "model.empty_poll_ratio",
        "model.crossover_lambda_t",
        "settings.poll_interval_s",
        "env.cpu_count",
    ):
        assert col in df.columns, col
    row = df[(df["param.rate_per_s"] == 2.0) & (df["style"] == "polling")].iloc[0]
    assert row["requests"] == 50 and row["delivered"] == 100
    assert row["requests_per_event"] == pytest.approx(0.5) and row["model.requests_per_event"] == pytest.approx(0.5)
    assert row["empty_poll_ratio"] == pytest.approx(0.14) and row["model.empty_poll_ratio"] == pytest.approx(0.135335, abs=1e-6)
    assert row["latency_ms.mean"] == pytest.approx(503.0) and row["model.latency_mean_ms"] == pytest.approx(502.0)
    web = df[(df["param.rate_per_s"] == 2.0) & (df["style"] == "webhook")].iloc[0]
    assert web["model.crossover_lambda_t"] == 1.0 and web["bytes_per_event"] == 600.0
    assert web["settings.styles"] == ("webhook", "polling")


def test_events_of_the_fixture(df):
    ev = load_events(FIXTURE)
    assert list(ev.columns) == ["run_id", "style", "consumer", "event_id", "created_ns", "received_ns", "latency_us"]
    assert len(ev) == 100
    poll = ev[ev["style"] == "polling"]
    assert poll["latency_us"].mean() == pytest.approx(502_000.0)
    assert ev[ev["style"] == "webhook"]["latency_us"].min() == pytest.approx(3000.0)
