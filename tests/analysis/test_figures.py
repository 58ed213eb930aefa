"""Each figure returns a Figure with the measured data and a dashed line labelled "model".

The PNGs are written to the test's tmp folder, so a failing run can be looked at.
"""

from __future__ import annotations

import math

import matplotlib
import pandas as pd
import pytest
from matplotlib.figure import Figure

from labkit import figures, styles
from labkit.results.layout import load_events, load_results
from tests.helpers.paths import FIXTURE

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def df():
    return load_results(FIXTURE)


def _labels(fig: Figure) -> list[str]:
    return [line.get_label() for ax in fig.axes for line in ax.get_lines()]


def _model_lines(fig: Figure) -> list:
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_label().startswith("model")]


def _save(fig: Figure, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=80)
    assert path.stat().st_size > 5_000


def test_latency_cdf(tmp_path):
    fig = figures.latency_cdf(load_events(FIXTURE), poll_interval_s=1.0, rtt_ms=2.0)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = _labels(fig)
    assert any(label.startswith("webhook (p50") for label in labels)
    assert any(label.startswith("polling (p50") for label in labels)
    model = _model_lines(fig)
    assert len(model) == 1 and model[0].get_linestyle() == "--"
    assert ax.get_xscale() == "log" and "ms" in ax.get_xlabel()
    _save(fig, tmp_path, "latency_cdf")


def test_latency_cdf_without_the_interval_draws_no_model():
    assert _model_lines(figures.latency_cdf(load_events(FIXTURE))) == []


def test_summary_bars(df, tmp_path):
    fig = figures.summary_bars(df)
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["latency p50 (ms)", "latency p99 (ms)", "requests per event per consumer", "bytes per event per consumer"]
    # two bars (webhook, polling) per panel; model marks on latency and requests panels
    assert all(len(ax.patches) == 2 for ax in fig.axes)
    assert "model" in _labels(fig)
    heights = {p.get_height() for p in fig.axes[2].patches}
    assert heights == {1.0, 2.0}  # the first run: lambda T = 0.5
    _save(fig, tmp_path, "summary_bars")


@pytest.mark.parametrize("metric", ["requests_per_event", "bytes_per_event"])
def test_cost_vs_lambda_t(df, tmp_path, metric):
    fig = figures.cost_vs_lambda_t(df, metric=metric)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    model = _model_lines(fig)
    assert {line.get_linestyle() for line in model if "crossover" not in line.get_label()} == {"--"}
    assert any("polling" in line.get_label() for line in model) and any("push" in line.get_label() for line in model)
    crossover = [line for line in model if "crossover" in line.get_label()]
    assert len(crossover) == 1
    x = crossover[0].get_xdata()[0]
    # requests: 1/B = 1; bytes: polling 300/(lambda T) + 250 = push 600 at lambda T = 300/350
    assert x == pytest.approx(1.0 if metric == "requests_per_event" else 300 / 350)
    measured = [line for line in ax.get_lines() if line.get_label() == "polling: measured"]
    assert list(measured[0].get_xdata()) == [0.5, 2.0, 8.0]
    _save(fig, tmp_path, f"cost_vs_lambda_t_{metric}")


def test_cost_vs_lambda_t_rejects_unknown_metric(df):
    with pytest.raises(ValueError):
        figures.cost_vs_lambda_t(df, metric="joy")


def test_empty_polls_vs_lambda_t(df, tmp_path):
    fig = figures.empty_polls_vs_lambda_t(df)
    labels = _labels(fig)
    model = _model_lines(fig)
    assert len(model) == 1 and "e^(-lambda T)" in model[0].get_label() and model[0].get_linestyle() == "--"
    zapier = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("Zapier")]
    assert len(zapier) == 1
    assert zapier[0].get_xdata()[0] == pytest.approx(0.01545, abs=2e-4)
    assert zapier[0].get_ydata()[0] == pytest.approx(0.98467, abs=1e-4)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("measured") for label in legend)
    assert fig.axes[0].containers  # error bars: one standard error of a binomial share
    del labels
    _save(fig, tmp_path, "empty_polls")


def test_latency_vs_interval(df, tmp_path):
    fig = figures.latency_vs_interval(df)
    model = _model_lines(fig)
    assert any("T/2 + RTT" in line.get_label() for line in model)
    mean = next(line for line in model if "T/2" in line.get_label())
    # RTT 2 ms in the fixture: at T = 1 s the model says 502 ms
    xs, ys = mean.get_xdata(), mean.get_ydata()
    i = min(range(len(xs)), key=lambda k: abs(xs[k] - 1.0))
    assert ys[i] == pytest.approx(xs[i] * 500 + 2.0)
    assert "polling: measured mean" in _labels(fig)
    _save(fig, tmp_path, "latency_vs_interval")


def test_cpu_vs_consumers(df, tmp_path):
    # the fixture has one consumer per run: give the three points 1, 10 and 50 consumers
    scaled = df.copy()
    scaled["consumers"] = scaled["param.rate_per_s"].map({0.5: 1, 2.0: 10, 8.0: 50})
    fig = figures.cpu_vs_consumers(scaled)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["Provider CPU per event", "Consumer CPU per event"]
    assert any(label.startswith("model (calibrated") for label in _labels(fig))
    assert "webhook: measured" in _labels(fig)
    _save(fig, tmp_path, "cpu_vs_consumers")


def test_snapshot_fraction_model_only_is_labelled_so(df, tmp_path):
    fig = figures.snapshot_fraction(df)
    assert "model only" in fig.axes[0].get_title()
    model = _model_lines(fig)
    assert len(model) == 2
    line = model[0]
    xs, ys = line.get_xdata(), line.get_ydata()
    i = min(range(len(xs)), key=lambda k: abs(xs[k] - 1.0))
    assert ys[i] == pytest.approx((1 - math.exp(-xs[i])) / xs[i])
    _save(fig, tmp_path, "snapshot_fraction")


def test_snapshot_fraction_with_measurements():
    df = pd.DataFrame({"style": ["polling"], "workload.lambda_t": [2.0], "fraction_seen": [0.45]})
    fig = figures.snapshot_fraction(df)
    assert "model only" not in fig.axes[0].get_title()
    assert "snapshot polling: measured" in _labels(fig)


EMPTY = pd.DataFrame(columns=["style"])


@pytest.mark.parametrize(
    ("draw", "says", "model_only"),
    [
        (lambda: figures.summary_bars(EMPTY), "no results", False),
        (lambda: figures.cost_vs_lambda_t(EMPTY), "no results", False),
        (lambda: figures.latency_vs_interval(EMPTY), "no polling runs", False),
        (lambda: figures.cpu_vs_consumers(EMPTY), "no results", False),
        (lambda: figures.latency_cdf(pd.DataFrame(columns=["style", "latency_us"])), "no events", False),
        (lambda: figures.empty_polls_vs_lambda_t(EMPTY), "model only", True),
        (lambda: figures.snapshot_fraction(None), "model only", True),
    ],
    ids=["summary_bars", "cost_vs_lambda_t", "latency_vs_interval", "cpu_vs_consumers", "latency_cdf", "empty_polls", "snapshot"],
)
def test_a_figure_with_no_rows_draws_no_measurement_and_says_so(draw, says, model_only):
    fig = draw()
    words = " ".join([ax.get_title() for ax in fig.axes] + [t.get_text() for ax in fig.axes for t in ax.texts])
    assert says in words
    assert not any(ax.patches or ax.collections for ax in fig.axes)  # no bar, no scatter point
    lines = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert not any("measured" in label or label.split(" ")[0] in styles.names() for label in lines)
    # a model-only figure still draws the model; the others draw nothing at all
    assert any(label.startswith("model") for label in lines) if model_only else lines == []
