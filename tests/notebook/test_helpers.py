"""labkit.notebook and the figures the notebooks added: fast checks, no servers.

The notebooks themselves are executed by ``test_notebooks.py``; these tests
pin the helpers' contracts (modes, folders, experiment overrides, tables,
the security helpers) on the committed fixture results.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import matplotlib
import pytest
from matplotlib.figure import Figure
from standardwebhooks.webhooks import Webhook

from labkit import figures
from labkit import notebook as nb
from labkit.analysis import calibration
from labkit.errors import ConfigError
from labkit.results.layout import load_events, load_results
from labkit.wire.signing import Signer, new_secret

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "results" / "fixture-lambda-t"


@pytest.fixture
def results_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(nb.RESULTS_ENV, str(tmp_path / "out"))
    monkeypatch.chdir(REPO)
    return tmp_path / "out"


@pytest.mark.parametrize(("value", "quick"), [("1", True), ("true", True), ("", False), ("0", False), (None, False)])
def test_params_follows_the_quick_mode(value: str | None, quick: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv(nb.QUICK_ENV, raising=False)
    else:
        monkeypatch.setenv(nb.QUICK_ENV, value)
    assert nb.quick_mode() is quick
    assert nb.params(full=60.0, quick=3.0) == (3.0 if quick else 60.0)


def test_results_root_honours_the_env_var(results_env: Path) -> None:
    assert nb.results_root() == results_env.resolve()
    assert results_env.is_dir()


def test_results_root_keeps_quick_runs_apart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "scenarios" / "experiments").mkdir(parents=True)
    (checkout / "notebooks").mkdir()
    monkeypatch.delenv(nb.RESULTS_ENV, raising=False)
    monkeypatch.chdir(checkout / "notebooks")  # where JupyterLab starts a kernel
    monkeypatch.delenv(nb.QUICK_ENV, raising=False)
    assert nb.results_root() == (checkout / "results" / "notebooks").resolve()
    monkeypatch.setenv(nb.QUICK_ENV, "1")
    assert nb.results_root() == (checkout / "results" / "notebooks" / "quick").resolve()


def test_experiment_overrides_a_shipped_file(results_env: Path) -> None:
    exp = nb.experiment("failures", name="nb-test", only=["consumer-down", "provider-killed"], workload={"duration_s": 4.0})
    assert exp.name == "nb-test"
    assert [p.params["variant"] for p in exp.points] == ["consumer-down", "provider-killed"]
    assert all(p.settings.workload.duration_s == 4.0 for p in exp.points)
    assert exp.results_dir == results_env.resolve() / "nb-test"


def test_experiment_from_tables_validates_like_a_file(results_env: Path) -> None:
    doc = {"experiment": {"name": "nb-dict"}, "run": {"poll_interval_s": [0.5, 1.0]}, "workload": {"rate_per_s": 2.0, "duration_s": 3.0}}
    exp = nb.experiment(doc)
    assert [p.settings.poll_interval_s for p in exp.points] == [0.5, 1.0]
    assert doc["run"]["poll_interval_s"] == [0.5, 1.0]  # the caller's dict is not changed
    with pytest.raises(ConfigError, match="poll_interval_s"):
        nb.experiment(doc, run={"poll_interval_s": -1.0})
    with pytest.raises(ConfigError, match="no such experiment file"):
        nb.experiment("no-such-experiment")


def test_summary_frame_puts_the_model_beside_the_measurement() -> None:
    summary = json.loads(next(FIXTURE.rglob("summary.json")).read_text())
    frame = nb.summary_frame(summary)
    assert list(frame.columns) == [f"{s} {k}" for s in summary["styles"] for k in ("measured", "model")]
    assert frame.loc["latency mean (ms)", "polling model"] != ""
    assert frame.loc["lost", "polling model"] == ""  # no model for that row


def test_calibration_and_projection_frames_say_projection() -> None:
    fitted = calibration.fit_costs(load_results(FIXTURE))
    assert set(nb.calibration_frame(fitted).index.get_level_values("style")) == set(fitted.fits)
    frame = nb.projection_frame(calibration.project(fitted, consumers=100_000, rate_per_s=50.0))
    assert all("PROJECTION" in column for column in frame.columns)
    assert "requests/s" in frame.index


def test_webhook_message_verifies_with_an_independent_implementation() -> None:
    secret = new_secret()
    body = nb.webhook_message(7, {"order": 7})
    headers = Signer([secret]).headers("msg_7", body)
    assert Webhook(secret).verify(body.decode(), headers)["data"]["id"] == 7


def test_ssrf_verdicts_refuse_metadata_private_and_loopback_addresses() -> None:
    frame = nb.ssrf_verdicts(["http://169.254.169.254/", "http://10.0.0.1/", "http://127.0.0.1:8080/", "https://93.184.215.14/hook"])
    assert list(frame["verdict"]) == ["REFUSED", "REFUSED", "REFUSED", "allowed"]
    assert nb.ssrf_verdicts(["http://127.0.0.1:8080/"], allowed=("127.0.0.1",))["verdict"].iloc[0] == "allowed"


def test_off_the_loop_runs_asyncio_code_under_a_running_loop() -> None:
    async def inside_jupyter() -> int:  # Jupyter runs cells inside its event loop
        return nb.off_the_loop(asyncio.run, asyncio.sleep(0, result=42))

    assert asyncio.run(inside_jupyter()) == 42


def test_latency_timeline_draws_each_style_and_the_model() -> None:
    events = load_events(FIXTURE)
    run = events["run_id"].iloc[0]
    fig = figures.latency_timeline(events[events["run_id"] == run], poll_interval_s=1.0, rtt_ms=1.0, window_s=10.0)
    assert isinstance(fig, Figure)
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert any(label.startswith("model: mean T/2") for label in labels)
    assert len(fig.axes) == events[events["run_id"] == run]["style"].nunique()


def test_latency_timeline_shades_fault_episodes() -> None:
    events = load_events(FIXTURE)
    results = load_results(FIXTURE)
    run = events["run_id"].iloc[0]
    rows = results[results["run_id"] == run].copy()
    rows["fault.episodes"] = [[{"what": "consumer SIGKILLed", "at_s": 1.0, "outage_s": 0.5, "catch_up_s": 1.0}]] * len(rows)
    fig = figures.latency_timeline(events[events["run_id"] == run], rows, log=True)
    assert any(patch.get_label() == "consumer SIGKILLed: outage" for ax in fig.axes for patch in ax.patches)


def test_variant_bars_shows_every_row_and_the_model() -> None:
    results = load_results(FIXTURE)
    fig = figures.variant_bars(results)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == len(results)
    assert any(line.get_label() == "model" for ax in fig.axes for line in ax.get_lines())
