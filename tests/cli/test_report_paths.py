"""``labkit report`` and ``labkit decide`` print the report's paths and recommendation the same way (one helper)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit.cli.common import echo_report, report_json
from labkit.cli.decide import decision_json


def _paths(rec: object | None) -> SimpleNamespace:
    return SimpleNamespace(html=Path("/r/report.html"), markdown=Path("/r/report.md"), recommendation=rec, headlines=[], predictions=())


REC = SimpleNamespace(option="polling", confidence="high", sentence="Poll.", poll_interval_s=5.0, confidence_why="measured", options=())


def test_report_json_carries_paths_and_the_recommendation() -> None:
    assert report_json(_paths(REC)) == {
        "html": "/r/report.html",
        "markdown": "/r/report.md",
        "recommendation": {
            "option": "polling",
            "confidence": "high",
            "sentence": "Poll.",
            "poll_interval_s": 5.0,
            "confidence_why": "measured",
            "options": [],
        },
        "predictions": [],
    }
    assert report_json(_paths(None))["recommendation"] is None


def test_echo_report_prints_aligned_lines(capsys: pytest.CaptureFixture[str]) -> None:
    echo_report(_paths(REC))
    assert capsys.readouterr().out.splitlines() == [
        "html:           /r/report.html",
        "markdown:       /r/report.md",
        "recommendation: polling (high confidence)",
    ]
    echo_report(_paths(None))
    assert "recommendation" not in capsys.readouterr().out


def test_decide_json_keeps_its_keys_in_order() -> None:
    plan = SimpleNamespace(
        results_dir=Path("/r"),
        skipped_styles=[("webhook", "needs a public endpoint")],
        budget_minutes=3.0,
        estimated_s=170.0,
        estimated_total_s=170.0,
        budget_notes=("time budget 3 min",),
    )
    doc = decision_json(Path("req.toml"), plan, [], _paths(REC), 61.23)  # type: ignore[arg-type]
    assert list(doc) == [
        "schema_version",
        "requirements",
        "results_dir",
        "elapsed_s",
        "runs",
        "not_candidates",
        "html",
        "markdown",
        "recommendation",
        "headlines",
        "max_minutes",
        "estimated_s",
        "budget_notes",
    ]
    assert doc["recommendation"]["option"] == "polling" and doc["elapsed_s"] == 61.2
