"""Held streams in the decision: SSE and WebSocket weighed against long polling on the stream fixture run.

tests/fixtures/report/streams holds one hand-made FIXTURE run (make_stream_fixture.py): webhook, long polling,
sse and websocket, 100 consumers each, 1 event/s. The decision is a pure function of it.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from labkit import styles
from labkit.report import OPTIONS, decide, load_requirements
from labkit.report.observations import is_stream
from labkit.report.terms import LONG_POLLING, POLLING, STREAM_FAMILY
from labkit.results.layout import load_results
from tests.helpers.report import COMPARE_RUN, GOLDEN, REQUIREMENTS, STREAMS_RUN, SWEEP

NAT = "mobile-app-behind-nat"


@pytest.fixture(scope="module")
def with_streams(results_df):
    return pd.concat([results_df, load_results(STREAMS_RUN)], ignore_index=True)


@pytest.fixture(scope="module")
def nat(with_streams):
    return decide(load_requirements(REQUIREMENTS / f"{NAT}.toml"), with_streams)


def stream_names() -> set[str]:
    return {i.name for i in styles.all_styles() if is_stream(i.name)}


def test_the_registry_marks_sse_and_websocket_as_streams():
    assert {"sse", "websocket"} <= stream_names()
    assert not is_stream("webhook") and not is_stream("polling")


def test_nat_bound_consumers_get_a_measured_stream(nat):
    assert nat.stream_style in stream_names()
    assert nat.option in STREAM_FAMILY and nat.option in OPTIONS
    # the streams tie on cost (inside the counting error); the fixture is 100 consumers on loopback: scaled
    assert nat.confidence == "medium" and "tie" in nat.confidence_why
    assert "meets the 2,000 ms target" in nat.sentence and "long polling's" in nat.sentence


def test_the_stream_is_weighed_against_long_polling_with_measured_numbers(nat):
    cited = {(e.style, e.column) for r in nat.reasons for e in r.evidence}
    for style in ("sse", "websocket"):
        for column in ("latency_ms.p99", "bytes_per_event", "provider_cpu_s", "provider_rss_mb", "reconnects", "dropped_backpressure"):
            assert (style, column) in cited, (style, column)
    assert ("polling", "bytes_per_event") in cited and ("polling", "latency_ms.p99") in cited
    long_poll_runs = {e.run_id for r in nat.reasons for e in r.evidence if e.style == "polling" and e.column == "bytes_per_event"}
    assert STREAMS_RUN.name in long_poll_runs  # the long polling of the same comparison, not a plain poll elsewhere
    rejected = dict(nat.rejected)
    assert "costs more than" in rejected[LONG_POLLING] and "provider processes" in rejected[LONG_POLLING]
    other = next(o for o in STREAM_FAMILY if o != nat.option)
    assert "ties with" in rejected[other] and "would separate them" in rejected[other]


def test_every_stream_reason_cites_the_stream_run(nat, with_streams):
    rows = {(r["run_id"], r["style"]): r for r in with_streams.to_dict("records")}
    for reason in nat.reasons:
        if reason.favours in STREAM_FAMILY:
            assert any(e.run_id == STREAMS_RUN.name for e in reason.evidence), reason.text
        for e in reason.evidence:
            assert (e.run_id, e.style) in rows and e.column in rows[(e.run_id, e.style)]


def test_a_stream_that_lost_events_is_not_recommended(with_streams):
    df = with_streams.copy()
    df.loc[df["style"].map(is_stream), "lost"] = 5
    rec = decide(load_requirements(REQUIREMENTS / f"{NAT}.toml"), df)
    assert rec.option == LONG_POLLING and rec.stream_style is None
    assert all("fails nothing lost: 5 lost" in why for o, why in rec.rejected if o in STREAM_FAMILY)


def test_a_stream_that_misses_the_target_is_not_recommended(with_streams):
    df = with_streams.copy()
    df.loc[df["style"].map(is_stream), "latency_ms.p99"] = 2500.0
    rec = decide(load_requirements(REQUIREMENTS / f"{NAT}.toml"), df)
    assert rec.option == LONG_POLLING
    assert all("fails p99 within target: 2,500" in why and "vs 2,000 ms" in why for o, why in rec.rejected if o in STREAM_FAMILY)


def test_streams_are_weighed_on_their_numbers_even_where_webhooks_could_land(with_streams):
    """No rule sets a measured stream aside because the consumers could take webhooks: its own numbers decide."""
    rec = decide(load_requirements(REQUIREMENTS / "payments-provider.toml"), with_streams)
    rows = {r.option: r for r in rec.options}
    for option in STREAM_FAMILY:
        assert rows[option].basis != "not measured" and rows[option].run_id == STREAMS_RUN.name
        assert "consumers can receive webhooks" not in rows[option].why
    assert all("consumers can receive webhooks" not in why for _, why in rec.rejected)


def test_no_stream_run_is_a_decisive_gap_with_the_exact_command(results_df):
    rec = decide(load_requirements(REQUIREMENTS / f"{NAT}.toml"), results_df)
    gap = [g for g in rec.gaps if "no held-stream run" in g.what]
    assert gap and gap[0].affects == "decision"
    assert gap[0].command.startswith(f"labkit compare --styles {','.join(styles.names())} --rate 0.05 ")
    assert "sse" in gap[0].command and "websocket" in gap[0].command
    https = decide(load_requirements(REQUIREMENTS / "payments-provider.toml"), results_df)
    assert not [g for g in https.gaps if "no held-stream run" in g.what]  # webhooks reach them: streams are no candidate


PUBLIC_FEED = "public-live-feed"


def _scaled(df: pd.DataFrame, which, factor: float) -> pd.DataFrame:
    """The table with the provider CPU and bytes per event of the rows ``which`` picks multiplied by ``factor``."""
    out = df.copy()
    rows = out["style"].map(which)
    for column in ("provider_cpu_s", "bytes_per_event"):
        out.loc[rows, column] = out.loc[rows, column] * factor
    return out


def test_a_stream_cheaper_than_polling_wins(with_streams):
    """A public high-rate feed: the measured streams cost less than polling (as in the fixture), so a stream wins."""
    rec = decide(load_requirements(REQUIREMENTS / f"{PUBLIC_FEED}.toml"), with_streams)
    assert rec.option in STREAM_FAMILY and rec.stream_style in stream_names()
    rows = {r.option: r for r in rec.options}
    assert rows[POLLING].meets_all and ("costs more than" in rows[POLLING].why or "over the budget" in rows[POLLING].why)


def test_polling_cheaper_than_the_streams_wins(with_streams):
    """The same feed with every stream's CPU and bytes per event made 50 times dearer: polling is cheaper and wins."""
    df = _scaled(with_streams, is_stream, 50.0)
    rec = decide(load_requirements(REQUIREMENTS / f"{PUBLIC_FEED}.toml"), df)
    assert rec.option == POLLING and rec.stream_style is None
    rows = {r.option: r for r in rec.options}
    for option in STREAM_FAMILY:
        assert rows[option].meets_all and "costs more than polling" in rows[option].why


def test_every_candidate_the_consumers_can_take_has_a_traced_row(with_streams):
    rec = decide(load_requirements(REQUIREMENTS / f"{PUBLIC_FEED}.toml"), with_streams)
    table = {(r["run_id"], r["style"]): r for r in with_streams.to_dict("records")}
    measured = [r for r in rec.options if r.basis not in ("not measured", "projected")]
    assert {r.option for r in measured} >= {POLLING, LONG_POLLING, *STREAM_FAMILY}
    assert sum(r.chosen for r in rec.options) == 1
    for row in measured:
        for cell in row.hard + row.cost:
            for ev in cell.evidence:
                assert (ev.run_id, ev.style) in table and ev.column in table[(ev.run_id, ev.style)], (row.option, cell.what)


def test_golden_nat_with_streams(nat):
    got = json.loads(json.dumps(nat.to_dict(), default=str))
    path = GOLDEN / f"{NAT}-with-streams.json"
    if os.environ.get("LABKIT_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert path.exists(), f"{path} missing: run LABKIT_UPDATE_GOLDEN=1 pytest tests/report"
    assert got == json.loads(path.read_text())


def test_fixture_is_labelled_and_complete():
    summary = json.loads((STREAMS_RUN / "summary.json").read_text())
    assert "not a measurement" in summary["fixture"]
    for style in ("sse", "websocket"):
        block = summary["styles"][style]
        assert {"reconnects", "dropped_backpressure", "connections"} <= set(block)
        assert set(summary["styles"]["webhook"]) - {"attempts", "retries", "dead", "rejected", "delivery_rtt_ms"} <= set(block)
    assert COMPARE_RUN.exists() and SWEEP.exists()


def test_stream_table_derives_per_connection_numbers():
    from labkit.report.stream_figure import stream_table

    table = stream_table(load_results(STREAMS_RUN)).set_index("style")
    assert list(table.index) == [s for s in styles.names() if s in table.index]
    sse = table.loc["sse"]
    assert sse["provider_rss_kb_per_connection"] == pytest.approx((61.78 - 58.4) * 1024 / 100)
    assert sse["provider_cpu_ms_per_event"] == pytest.approx(0.8488 / 6700 * 1000)
    assert table.loc["webhook"].isna()["provider_rss_kb_per_connection"]  # the run's baseline provider holds no stream


def test_stream_table_without_a_stream_run_says_so(results_df):
    from labkit.errors import ResultsError
    from labkit.report.stream_figure import stream_table

    with pytest.raises(ResultsError, match="no run measured a held stream"):
        stream_table(results_df)


@pytest.mark.slow
def test_report_for_nat_consumers_renders_the_streams(tmp_path, fake_figures):
    from labkit.report import write_report

    fake_figures()
    paths = write_report([COMPARE_RUN.parent, SWEEP, STREAMS_RUN], out_dir=tmp_path / "out", requirements=REQUIREMENTS / f"{NAT}.toml")
    assert (tmp_path / "out" / "figures" / "streams.png").read_bytes().startswith(b"\x89PNG")
    for text in (paths.html.read_text(), paths.markdown.read_text()):
        assert "Server-Sent Events" in text and "WebSocket" in text and "long polling" in text
        assert "backpressure drops" in text
        assert "Held streams against webhooks and long polling" in text
    assert paths.recommendation is not None and paths.recommendation.stream_style in stream_names()
