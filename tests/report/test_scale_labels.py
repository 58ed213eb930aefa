"""Every headline number says whether it was measured at the operating point, at a smaller scale, or projected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from labkit.report import write_report
from labkit.report.requirements import parse_requirements
from labkit.report.scale import MEASURED, PROJECTED, SCALED, headlines
from tests.helpers.cli import labkit

ROOT = Path(__file__).resolve().parents[2]
REQ = parse_requirements({"consumers": 2000, "event_rate_per_s": 0.5, "network": "cross-region", "tls": True})
CROSS = {"name": "cross-region", "rtt_ms": 65.0}


def row(style: str, consumers: int, *, rate: float = 0.5, network: dict | None = CROSS, tls: bool = True, run: str = "r1") -> dict:
    return {
        "run_id": run,
        "style": style,
        "consumers": consumers,
        "workload.rate_per_s": rate,
        "poll_interval_s": 0.15,
        "workload.network": network,
        "workload.tls": tls,
        "latency_ms.p50": 70.0,
        "latency_ms.p99": 120.0,
        "requests_per_event": 1.0,
        "bytes_per_event": 900.0,
        "lost": 0,
    }


def by(heads, style):
    return {h.name: h for h in heads if h.style == style}


def test_a_run_at_the_operating_point_is_measured_and_a_smaller_one_is_scaled_with_the_difference_named() -> None:
    heads = headlines(pd.DataFrame([row("webhook", 2000, run="a"), row("polling", 150, run="b")]), REQ)
    webhook, polling = by(heads, "webhook"), by(heads, "polling")
    assert webhook["latency p99"].basis == MEASURED and webhook["latency p99"].value == 120.0
    assert polling["latency p99"].basis == SCALED
    assert "150 of 2,000 consumers" in polling["latency p99"].basis_text
    assert polling["latency p99"].run_id == "b"


def test_network_tls_and_rate_differences_are_not_the_operating_point() -> None:
    for kwargs, words in (({"network": None}, "network loopback"), ({"tls": False}, "without TLS"), ({"rate": 5.0}, "events/s")):
        heads = headlines(pd.DataFrame([row("webhook", 2000, **kwargs)]), REQ)
        h = by(heads, "webhook")["latency p50"]
        assert h.basis == SCALED and words in h.basis_text


def test_a_run_whose_pipeline_did_not_record_the_network_counts_as_loopback_without_tls() -> None:
    r = row("webhook", 2000)
    del r["workload.network"], r["workload.tls"]
    r["settings.network"], r["settings.tls"] = CROSS, True  # asked for, but not applied
    h = by(headlines(pd.DataFrame([r]), REQ), "webhook")["latency p99"]
    assert h.basis == SCALED and "network loopback" in h.basis_text and "without TLS" in h.basis_text


def test_the_run_nearest_the_operating_point_is_the_one_quoted() -> None:
    heads = headlines(pd.DataFrame([row("webhook", 10, run="small"), row("webhook", 2000, run="full")]), REQ)
    assert by(heads, "webhook")["latency p99"].run_id == "full"


def test_projected_numbers_are_labelled_projected() -> None:
    heads = headlines(pd.DataFrame([row("webhook", 2000)]), REQ, [("webhook", "provider servers", "3")])
    h = by(heads, "webhook")["provider servers"]
    assert h.basis == PROJECTED and h.value == 3.0 and h.run_id is None


@pytest.mark.slow  # renders a full report with real figures
def test_the_report_puts_the_label_next_to_each_number(tmp_path: Path) -> None:
    paths = write_report([ROOT / "tests/fixtures/report/compare"], tmp_path, requirements=REQ)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "## Headline numbers" in md and 'id="headlines"' in html
    assert "**scaled**: measured at a smaller scale" in md
    assert 'class="tag basis scaled"' in html
    assert paths.headlines and {h.basis for h in paths.headlines} <= {MEASURED, SCALED, PROJECTED}


def test_decide_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (
        ["decide", str(tmp_path / "missing.toml")],
        ["decide", str(ROOT / "scenarios/requirements/payments-provider.toml"), "--max-minutes", "0"],
    ):
        proc = labkit(*args, "--out", str(tmp_path))
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1


def test_a_push_that_misses_the_target_is_not_chosen_and_its_row_says_why() -> None:
    from labkit.report import decide
    from labkit.report.terms import POLLING, WEBHOOK

    slow = row("webhook", 2000)
    slow["latency_ms.p99"] = 55_000.0
    req = parse_requirements({"consumers": 2000, "event_rate_per_s": 0.5, "target_latency_p99_ms": 250, "missed_events_tolerated": False})
    rec = decide(req, pd.DataFrame([slow, row("polling", 150)]))
    assert rec.option == POLLING
    assert "fails p99 within target: 55,000 ms" in dict(rec.rejected)[WEBHOOK]
    assert "vs 250 ms" in dict(rec.rejected)[WEBHOOK]


def test_polling_and_long_polling_each_get_their_headlines() -> None:
    lp = row("polling", 150, run="lp")
    lp["settings.long_poll_wait_s"] = 30.0
    heads = headlines(pd.DataFrame([row("polling", 150, run="plain"), lp]), REQ)
    runs = {h.style: h.run_id for h in heads}
    assert runs == {"polling": "plain", "long polling": "lp"}
