"""Predicted, then measured, in the report: each prediction beside its run, and a disagreement listed under the risks.

The predictions here are written by the test (what ``labkit decide`` writes
before its runs, in its schema), beside a copy of the committed compare run:
one that agrees with the run and one that the run contradicts.
"""

from __future__ import annotations

import json
import shutil

import pytest

from labkit.report import decide, load_requirements, write_report
from labkit.report.observations import observations
from labkit.report.predicted import Check, beside, find_predictions, risks, table
from tests.helpers.report import COMPARE_RUN, REQUIREMENTS

RUN = COMPARE_RUN.name


def prediction_doc(webhook_mean: float, polling_p99: float) -> dict:
    return {
        "schema_version": 1,
        "kind": "model",
        "written_at": "2025-03-01T11:59:00+00:00",
        "calibration": "calibration test",
        "points": [
            {
                "label": "webhook",
                "run_id": RUN,
                "style": "webhook",
                "predicted": {"latency_mean_ms": webhook_mean, "requests_per_event": 1.0, "connections": 1.0},
                "base_source": "calibration test",
            },
            {
                "label": "polling",
                "run_id": RUN,
                "style": "polling",
                "predicted": {"latency_mean_ms": 503.5, "latency_p99_ms": polling_p99, "requests_per_event": 0.05},
                "base_source": "calibration test",
            },
        ],
    }


@pytest.fixture
def decision(tmp_path):
    """A decision's folder as ``labkit decide`` leaves it: predictions.json beside the run folders."""

    def make(webhook_mean: float = 4.0, polling_p99: float = 993.5):
        folder = tmp_path / "decide"
        shutil.copytree(COMPARE_RUN, folder / RUN)
        summary_path = folder / RUN / "summary.json"
        summary = json.loads(summary_path.read_text())
        for block in summary["styles"].values():  # a standard error needs the per-event spread
            block["latency_ms"]["sd"] = 2.0
        summary_path.write_text(json.dumps(summary))
        (folder / "predictions.json").write_text(json.dumps(prediction_doc(webhook_mean, polling_p99)))
        return folder

    return make


def _rows(folder):
    from labkit.results.layout import load_results

    return beside(find_predictions([folder / RUN]), observations(load_results(folder)))


def test_a_prediction_is_set_beside_its_run_and_judged(decision):
    rows = {r.label: r for r in _rows(decision(webhook_mean=4.0, polling_p99=993.5))}
    webhook, polling = rows["webhook"], rows["polling"]
    assert webhook.measured and polling.measured
    mean = webhook.checks[0]
    # measured 4.338 ms against 4.0 (bound 2 ms): within; SE = 2 / sqrt(191)
    assert mean.quantity == "mean" and mean.agrees is True
    assert mean.off_se == pytest.approx((4.338 - 4.0) / (2.0 / 191**0.5))
    assert [c.quantity for c in polling.checks] == ["mean", "p99"] and all(c.agrees for c in polling.checks)
    assert webhook.requests == (1.0, pytest.approx(1.0157, abs=1e-4))
    assert not webhook.disagrees and not polling.disagrees


def test_a_disagreement_beyond_its_bound_is_a_risk_with_its_meaning(decision):
    folder = decision(webhook_mean=20.0, polling_p99=600.0)
    rows = _rows(folder)
    from labkit.results.layout import load_results

    rec = decide(load_requirements(REQUIREMENTS / "payments-provider.toml"), load_results(folder))
    found = {r["candidate"]: r for r in risks(rows, rec)}
    assert set(found) == {"webhook", "polling"}
    # payments at this one run: polling is chosen, webhook push is not (the options table says why)
    chosen = {r.style for r in rec.options if r.chosen and r.run_id == RUN}
    assert chosen == {"polling"}
    # the webhook measured far below a 20 ms model: the model overstates a cost; the choice stands on its measurement
    assert "4.34 ms is 108.2 SE below the model's 20 ms" in found["webhook"]["what"]
    assert "overstates" in found["webhook"]["means"] and "webhook push was not chosen" in found["webhook"]["means"]
    # polling's p99 975 ms is above a 600 ms model (bound 60 ms): the lab's costs are higher than calibrated, and the
    # recommendation (polling) rests on the measurement
    assert "p99 latency 975 ms is" in found["polling"]["what"] and "above the model's 600 ms" in found["polling"]["what"]
    assert "higher than calibrated" in found["polling"]["means"] and "rests on the measurement" in found["polling"]["means"]


def test_no_predictions_file_means_no_rows(tmp_path):
    shutil.copytree(COMPARE_RUN, tmp_path / RUN)
    assert find_predictions([tmp_path / RUN]) == []
    (tmp_path / "predictions.json").write_text(json.dumps({"schema_version": 99, "points": []}))
    assert find_predictions([tmp_path / RUN]) == []  # another schema is not read as this one
    (tmp_path / "predictions.json").write_text("{not json")
    assert find_predictions([tmp_path / RUN, tmp_path]) == []


def test_a_prediction_without_its_run_is_shown_unmeasured_only_for_the_whole_decision(decision):
    from labkit.results.layout import load_results

    folder = decision()
    doc = prediction_doc(4.0, 993.5)
    doc["points"][0]["run_id"] = "never-ran"
    (folder / "predictions.json").write_text(json.dumps(doc))
    obs = observations(load_results(folder))
    # the decision's folder (or the folder above it) given: every candidate, the one that never ran unmeasured
    for given in (folder, folder.parent):
        rows = {r.label: r for r in beside(find_predictions([given]), obs)}
        assert set(rows) == {"webhook", "polling"}
        assert not rows["webhook"].measured and rows["webhook"].checks[0].agrees is None
    shown = {t["label"]: t for t in table(list(rows.values()))}
    assert shown["webhook"]["mean"].endswith("/ \u2014") and shown["webhook"]["mean_agreement"] == "\u2014"
    # one run folder given: only the runs the report read
    assert [r.label for r in beside(find_predictions([folder / RUN]), obs)] == ["polling"]
    # a run folder given that holds no summary (a candidate that failed): its prediction, unmeasured
    asked = beside(find_predictions([folder / RUN, folder / "never-ran"]), obs)
    assert sorted(r.label for r in asked) == ["polling", "webhook"]


def test_check_words():
    assert Check("mean", 10.0, 13.0, 2.0, 1.0).shown() == "beyond 2 ms (+3.0 SE)"
    assert Check("mean", 10.0, 11.0, 2.0, 0.0).shown() == "within 2 ms (no SE)"
    assert Check("mean", 10.0, None, 2.0, 1.0).agrees is None


def test_the_report_shows_predicted_beside_measured_and_the_risk(decision, fake_figures, tmp_path):
    fake_figures()
    folder = decision(webhook_mean=4.0, polling_p99=600.0)
    paths = write_report([folder / RUN], out_dir=tmp_path / "out", requirements=REQUIREMENTS / "payments-provider.toml")
    md, html = paths.markdown.read_text(), paths.html.read_text()
    assert "## Predicted, then measured" in md and 'id="predicted"' in html
    assert "| webhook | calibration test | 4 / 4.34 | within 2 ms" in md
    assert "### Where the measurement and the model disagree" in md and "Where the measurement and the model disagree" in html
    risk_lines = md.split("### Where the measurement and the model disagree", 1)[1]
    assert "| polling | the measured p99 latency 975 ms is" in risk_lines and "above the model's 600 ms" in risk_lines
    assert "| webhook |" not in risk_lines  # the webhook agreed: not a risk


def test_a_report_without_predictions_has_no_such_section(fake_figures, tmp_path):
    fake_figures()
    paths = write_report([COMPARE_RUN], out_dir=tmp_path / "out", requirements=REQUIREMENTS / "payments-provider.toml")
    md = paths.markdown.read_text()
    assert "Predicted, then measured" not in md and "the model disagree" not in md


def test_report_json_lists_each_prediction_beside_its_measurement(decision, fake_figures, tmp_path):
    """``labkit report --json`` carries the section's rows: model and measured figures, bound, standard error, agreement."""
    from tests.helpers.cli import labkit

    fake_figures()
    folder = decision(webhook_mean=4.0, polling_p99=600.0)
    ran = labkit(
        "report", str(folder / RUN), "--requirements", str(REQUIREMENTS / "payments-provider.toml"), "-o", str(tmp_path / "o"), "--json"
    )
    assert ran.returncode == 0, ran.stderr
    rows = {r["label"]: r for r in json.loads(ran.stdout)["predictions"]}
    assert set(rows) == {"webhook", "polling"}
    hook, poll = rows["webhook"], rows["polling"]
    assert hook["run_id"] == RUN and hook["base_source"] == "calibration test" and hook["measured"] is True
    assert hook["predicted_latency_mean_ms"] == 4.0 and hook["measured_latency_mean_ms"] == pytest.approx(4.34, abs=0.01)
    assert hook["agrees"] is True and hook["bound_ms"] == 2.0 and hook["se_ms"] > 0
    assert hook["predicted_connections"] == 1.0 and hook["predicted_requests_per_event"] == 1.0
    assert poll["predicted_latency_p99_ms"] == 600.0 and poll["measured_latency_p99_ms"] == pytest.approx(975, abs=1)
    assert poll["p99_agrees"] is False and poll["p99_bound_ms"] == 60.0
