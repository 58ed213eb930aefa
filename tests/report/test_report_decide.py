"""Golden tests of the decision logic on the committed fixture results.

The fixtures (tests/fixtures/report, written by make_fixtures.py) hold one
``labkit compare`` run (20 events/s, T = 1 s) and a three-point sweep over
lambda T = 0.1, 1, 10 (0.5 events/s, T = 0.2, 2, 20 s). Regenerate the golden
files after an intended change with ``LABKIT_UPDATE_GOLDEN=1 pytest tests/report``.
"""

from __future__ import annotations

import json
import math
import os
import shlex

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.errors import ResultsError
from labkit.report import FACTORS, OPTIONS, Requirements, decide, load_requirements
from labkit.report.observations import observations, variant_of
from labkit.report.terms import FALLBACK, LONG_POLLING, POLLING, PUSH_FAMILY, THIN, WEBHOOK
from tests.helpers.report import EXAMPLES, GOLDEN, REQUIREMENTS


def example(name: str) -> Requirements:
    return load_requirements(REQUIREMENTS / f"{name}.toml")


@pytest.fixture(scope="module")
def recs(results_df):
    return {name: decide(example(name), results_df) for name in EXAMPLES}


# ---------------------------------------------------------------- the three examples


def test_payments_provider_gets_webhooks(recs):
    rec = recs["payments-provider"]
    # measured webhook push met every hard requirement (nothing lost included) within the budget; the
    # reconciling hybrid was not run as one, so its projected row is listed but not chosen over a measurement
    assert rec.option == WEBHOOK
    rows = {r.option: r for r in rec.options}
    assert rows[FALLBACK].basis == "projected" and "projected" in rows[FALLBACK].why
    assert not rows[POLLING].within_budget and "over the budget" in rows[POLLING].why


def test_nat_bound_consumers_never_get_webhook_push(recs):
    rec = recs["mobile-app-behind-nat"]
    assert rec.option in (POLLING, LONG_POLLING)
    assert rec.option not in PUSH_FAMILY
    rejected = dict(rec.rejected)
    assert all("HTTPS endpoint" in rejected[o] for o in PUSH_FAMILY)


def test_internal_batch_sync_gets_polling(recs):
    rec = recs["internal-batch-sync"]
    assert rec.option == POLLING
    assert rec.poll_interval_s is not None and 600 <= rec.poll_interval_s <= 3600


def test_recommendation_differs_where_requirements_differ(recs):
    assert {r.option for r in recs.values()} == {WEBHOOK, POLLING}


def test_every_option_and_factor_is_a_known_name(recs):
    for rec in recs.values():
        assert rec.option in OPTIONS
        assert {o for o, _ in rec.rejected} == set(OPTIONS) - {rec.option}
        assert [v.factor for v in rec.factors] == list(FACTORS)
        assert rec.confidence in ("high", "medium", "low")
        assert rec.sentence.endswith(".")


def test_every_reason_is_traced_to_a_measured_number(recs, results_df):
    """Each reason names a factor and cites (run id, style, column, value) that the results hold."""
    for name, rec in recs.items():
        assert rec.reasons, name
        assert {r.factor for r in rec.reasons} == set(FACTORS), f"{name}: every factor gets a reason"
        for reason in rec.reasons:
            assert reason.factor in FACTORS
            assert reason.evidence, reason.text
            for ev in reason.evidence:
                row = results_df[(results_df.run_id == ev.run_id) & (results_df["style"] == ev.style)]
                assert len(row) == 1, ev
                assert ev.column in row.columns, ev
                measured = row.iloc[0][ev.column]
                if isinstance(measured, float) and math.isnan(measured):
                    assert ev.value is None, ev
                else:
                    assert measured == ev.value, ev


def test_decide_is_pure(results_df):
    before = results_df.copy()
    a = decide(example("payments-provider"), results_df)
    b = decide(example("payments-provider"), results_df)
    assert a == b
    pd.testing.assert_frame_equal(results_df, before)


@pytest.mark.parametrize("name", EXAMPLES)
def test_golden(recs, name):
    """The whole decision, text included, against the committed golden file."""
    got = json.loads(json.dumps(recs[name].to_dict(), default=str))
    path = GOLDEN / f"{name}.json"
    if os.environ.get("LABKIT_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert path.exists(), f"{path} missing: run LABKIT_UPDATE_GOLDEN=1 pytest tests/report"
    assert got == json.loads(path.read_text())


# ---------------------------------------------------------------- coverage gaps


def _compare_args(command: str) -> list[str]:
    assert command.startswith("labkit compare "), command
    return shlex.split(command)[2:]


def assert_runnable_compare(command: str) -> None:
    """The command parses as `labkit compare` options and builds valid RunSettings."""
    import typer

    from labkit import styles
    from labkit.cli.commands import register_commands
    from labkit.cli.compare import build_run_settings

    compare = typer.main.get_command(register_commands()).commands["compare"]
    args = _compare_args(command)
    chosen: list[str] = []
    if "--styles" in args:  # a stream gap names every registered style
        i = args.index("--styles")
        chosen = args[i + 1].split(",")
        assert set(chosen) <= set(styles.names()), chosen
        if "styles" not in {p.name for p in compare.params}:
            del args[i : i + 2]  # compare without the stream styles' --styles option yet
            chosen = []
    ctx = compare.make_context("compare", args)
    p = ctx.params
    build_run_settings(
        {
            **({"styles": tuple(chosen)} if chosen else {}),
            "workload": {
                "arrival": p["arrival"],
                "rate_per_s": p["rate"],
                "duration_s": p["duration"],
                "payload_bytes": p["payload_bytes"],
                "seed": p["seed"],
            },
            "poll_interval_s": p["poll_interval"],
            "pollers": p["pollers"],
            # compare's --subscribers follows --pollers (or its default) when not given
            **({"subscribers": p["subscribers"]} if p["subscribers"] is not None else {}),
            "drain_timeout_s": p["drain_timeout"],
        }
    )


def test_rate_outside_measured_range_is_a_gap_naming_a_command(recs):
    gaps = recs["internal-batch-sync"].gaps
    rate_gaps = [g for g in gaps if "event rate 50/s was never run" in g.what]
    assert rate_gaps, [g.what for g in gaps]
    assert rate_gaps[0].command.startswith("labkit compare --rate 50 ")
    assert_runnable_compare(rate_gaps[0].command)


def test_unmeasured_poll_interval_is_a_gap(recs):
    gaps = recs["internal-batch-sync"].gaps
    interval = [g for g in gaps if "no polling run at T = 2,900 s" in g.what]
    assert interval and "--poll-interval 2900" in interval[0].command
    assert_runnable_compare(interval[0].command)


def test_every_compare_command_in_a_gap_is_runnable(recs):
    for rec in recs.values():
        for gap in rec.gaps:
            assert gap.command.startswith("labkit "), gap
            if gap.command.startswith("labkit compare"):
                assert_runnable_compare(gap.command)


def test_unmeasured_long_polling_is_listed_and_never_chosen_over_a_measurement(recs):
    rec = recs["mobile-app-behind-nat"]
    assert rec.option == POLLING
    rows = {r.option: r for r in rec.options}
    assert rows[LONG_POLLING].basis == "not measured" and rows[LONG_POLLING].why.startswith("not measured")
    # polling is the only measured candidate the consumers can take: nothing was weighed against it
    assert rec.confidence == "low" and "only one candidate" in rec.confidence_why


def test_covered_requirements_give_high_confidence_and_no_gap(results_df):
    req = Requirements(target_latency_p99_ms=250, event_rate_per_s=0.5, missed_events_tolerated=True, data_sensitivity="public")
    rec = decide(req, results_df)
    assert rec.option == WEBHOOK
    assert rec.gaps == ()
    assert rec.confidence == "high"


def test_unmeasured_thin_webhooks_are_listed_not_chosen(results_df):
    req = Requirements(target_latency_p99_ms=250, event_rate_per_s=0.5, missed_events_tolerated=True, data_sensitivity="sensitive")
    rec = decide(req, results_df)
    assert rec.option == WEBHOOK
    assert "not measured" in dict(rec.rejected)[THIN]


def test_an_impossible_target_is_low_confidence(results_df):
    rec = decide(Requirements(target_latency_p99_ms=0.5, event_rate_per_s=1), results_df)
    assert rec.confidence == "low"
    assert "no measured candidate meets every hard requirement (p99 within target failed)" in rec.confidence_why


def test_results_with_one_style_say_so(results_df):
    rec = decide(Requirements(event_rate_per_s=1), results_df[results_df["style"] == "webhook"])
    assert any(g.what == "no polling run at all" for g in rec.gaps)
    assert rec.confidence == "low"
    assert "only one candidate" in rec.confidence_why


def test_no_results_is_an_error():
    with pytest.raises(ResultsError):
        decide(Requirements(), pd.DataFrame())


def test_measured_crossover_sits_near_lambda_t_one(recs):
    point = recs["payments-provider"].operating_point
    assert point["crossover_measured"] is True
    assert 0.8 <= point["crossover_lambda_t"] <= 1.25


def test_variants_are_read_from_settings_or_the_model():
    assert variant_of({"style": "polling", "settings.long_poll_wait_s": 20.0}) == LONG_POLLING
    assert variant_of({"style": "polling", "param.long_poll_wait_s": 20.0}) == LONG_POLLING
    assert variant_of({"style": "polling", "model.assumes": "long polling: an event is answered within one round trip"}) == LONG_POLLING
    assert variant_of({"style": "polling"}) == POLLING
    assert variant_of({"style": "webhook", "settings.thin_events": True}) == "thin webhooks"
    assert variant_of({"style": "webhook", "settings.batch_max_events": 10}) == "batched webhooks"
    assert variant_of({"style": "webhook"}) == WEBHOOK


def test_a_measured_long_poll_run_is_cited(results_df):
    extra = results_df[(results_df["style"] == "polling") & (results_df["workload.lambda_t"] == 1.0)].copy()
    extra["run_id"] = "long-poll-run"
    extra["settings.long_poll_wait_s"] = 30.0
    extra["latency_ms.p99"] = 9.5
    df = pd.concat([results_df, extra], ignore_index=True)
    assert any(o.variant == LONG_POLLING for o in observations(df))
    req = Requirements(target_latency_p99_ms=2000, event_rate_per_s=0.05, consumers_can_expose_https=False)
    rec = decide(req, df)
    rows = {r.option: r for r in rec.options}
    assert rows[LONG_POLLING].run_id == "long-poll-run" and rows[LONG_POLLING].p99 == 9.5
    assert not any("long polling was never run" in g.what for g in rec.gaps)
    assert any(e.run_id == "long-poll-run" for r in rec.reasons for e in r.evidence)
    # the same measured costs as the plain poll it was copied from, but a connection held per consumer: polling is cheaper
    assert rec.option == POLLING and "connections held" in rows[LONG_POLLING].why


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.floats(min_value=1, max_value=10_000_000),
    rate=st.floats(min_value=0.001, max_value=10_000),
    consumers=st.integers(min_value=1, max_value=1_000_000),
    sensitivity=st.sampled_from(["public", "internal", "sensitive"]),
    ordering=st.sampled_from(["none", "per-key", "total"]),
    missed=st.booleans(),
    dupes=st.booleans(),
    bursty=st.booleans(),
)
def test_no_public_endpoint_never_gets_push(results_df, target, rate, consumers, sensitivity, ordering, missed, dupes, bursty):
    req = Requirements(
        target_latency_p99_ms=target,
        event_rate_per_s=rate,
        consumers=consumers,
        consumers_can_expose_https=False,
        data_sensitivity=sensitivity,
        ordering=ordering,
        missed_events_tolerated=missed,
        duplicates_tolerated=dupes,
        burstiness="bursty" if bursty else "steady",
    )
    rec = decide(req, results_df)
    assert rec.option in (POLLING, LONG_POLLING)
    for reason in rec.reasons:
        assert reason.evidence and reason.factor in FACTORS
