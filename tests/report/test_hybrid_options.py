"""The measured hybrid in the options table: its own row, weighed like every candidate, its cells traced to its run.

The fixtures (tests/fixtures/report/hybrid, written by make_hybrid_fixture.py) are two
small real runs on loopback of webhook push and the hybrid: one where nothing breaks,
one where the receiver answers 503 to every push from 1 s on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from labkit.report import Requirements, decide, write_report
from labkit.report.terms import FALLBACK, WEBHOOK
from labkit.results import columns as cols
from labkit.results.layout import load_results
from tests.helpers.report import stand_in_figures

HYBRID_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "hybrid"
SHOP = Requirements.model_validate(
    {
        "name": "Shop",
        "use_case": "order status notifications",
        "target_latency_p99_ms": 1000,
        "event_rate_per_s": 10,
        "consumers": 10,
        "consumers_can_expose_https": True,
        "missed_events_tolerated": False,
        "duplicates_tolerated": False,
    }
)


def _rows(name: str, req: Requirements = SHOP):
    df = load_results(HYBRID_RUNS / name)
    rec = decide(req, df)
    return rec, {r.option: r for r in rec.options}, df


def _traced(row, df) -> None:
    """Every number of the row's cells is the value its (run, style, column) holds in the results."""
    for cell in (*row.hard, *row.cost):
        for ev in cell.evidence:
            got = df[(df.run_id == ev.run_id) & (df["style"] == ev.style)].iloc[0][ev.column]
            assert got == pytest.approx(ev.value), ev


def test_the_measured_hybrid_is_a_row_of_its_own_and_loses_on_cost_when_push_loses_nothing() -> None:
    rec, rows, df = _rows("plain")
    hybrid = rows[FALLBACK]
    assert hybrid.measured and hybrid.basis == "measured" and hybrid.style == "hybrid" and hybrid.run_id
    assert "run as one" in hybrid.basis_text and "reconciling poll every 0.4 s" in hybrid.basis_text
    # its requests and bytes are the run's totals, the reconciler's share named and traced to its own columns
    requests = next(c for c in hybrid.cost if c.what == "requests per event")
    assert {e.column for e in requests.evidence} >= {cols.REQUESTS_PER_EVENT, cols.RECONCILE_REQUESTS_PER_EVENT, cols.RECONCILE_INTERVAL_S}
    assert "the reconciler's" in requests.shown
    _traced(hybrid, df)
    # both meet every hard requirement; push alone is cheaper (the reconciler reads every event again), and is chosen
    assert hybrid.meets_all and rows[WEBHOOK].meets_all
    assert rec.option == WEBHOOK and "costs more than webhook push" in hybrid.why


def test_when_push_gives_up_the_measured_hybrid_recovers_every_event_and_is_chosen() -> None:
    rec, rows, df = _rows("receiver-dead")
    webhook, hybrid = rows[WEBHOOK], rows[FALLBACK]
    assert "nothing lost" in webhook.failed
    lost = next(c for c in hybrid.hard if c.what == "nothing lost")
    assert lost.verdict == "pass" and lost.value == 0
    recovered = next(e for e in lost.evidence if e.column == cols.RECONCILE_RECOVERED)
    assert recovered.value and recovered.value > 0 and "the reconciler recovered" in lost.shown
    _traced(hybrid, df)
    assert rec.option == FALLBACK and hybrid.basis == "measured"
    assert "projected" not in hybrid.why


def test_the_report_of_a_measured_hybrid_renders_its_row(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "labkit.analysis.figures", stand_in_figures())
    paths = write_report([HYBRID_RUNS / "receiver-dead"], tmp_path / "report", SHOP)
    options = paths.markdown.read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    assert FALLBACK in options and "the reconciler recovered" in options


def test_a_decision_on_the_hybrid_alone_names_it_in_its_reasons() -> None:
    df = load_results(HYBRID_RUNS / "plain")
    rec = decide(SHOP, df[df["style"] == "hybrid"])
    assert rec.option == FALLBACK
    latency = next(r for r in rec.reasons if r.factor == "latency")
    assert latency.text.startswith("Hybrid: webhooks") and {e.style for e in latency.evidence} == {"hybrid"}
