"""The calibrated cost model on the golden fixture, whose costs were chosen by hand.

Fixture (tests/fixtures/results/fixture-lambda-t), per point (requests R, deliveries E):
    polling  R = 100, 50, 25;  E = 50, 100, 200
             bytes            = 300 R + 250 E
             provider CPU     = 0.5 (start-up, recorded) + 0.001 R + 0.0005 E + 0.2
             consumer CPU     = 0.002 R + 0.0001 E + 0.3 (no start-up reading)
    webhook  R = E = 50, 100, 200
             bytes            = 600 E
             provider CPU     = 0.5 (start-up) + 0.002 E + 0.1
             consumer CPU     = 0.4 (start-up) + 0.001 E + 0.05
"""

from __future__ import annotations

import math

import pytest

from labkit.analysis.calibration import fit_costs, project
from labkit.errors import ResultsError
from labkit.results.layout import load_results
from tests.helpers.paths import FIXTURE


@pytest.fixture(scope="module")
def calibration():
    return fit_costs(load_results(FIXTURE))


def test_polling_costs_are_the_hand_chosen_ones(calibration):
    b = calibration.fit("polling", "bytes")
    assert (b.per_request, b.per_event, b.per_run) == pytest.approx((300.0, 250.0, 0.0))
    assert b.r2 == pytest.approx(1.0) and b.runs == 3 and b.terms == ("per_request", "per_event")
    p = calibration.fit("polling", "provider_cpu_s")
    assert (p.per_request, p.per_event, p.per_run) == pytest.approx((0.001, 0.0005, 0.2))
    c = calibration.fit("polling", "consumer_cpu_s")
    assert (c.per_request, c.per_event, c.per_run) == pytest.approx((0.002, 0.0001, 0.3))
    assert c.unit == "CPU-seconds" and b.unit == "bytes"
    # one consumer per run: accepting a published event cannot be told from delivering it
    assert b.per_published == 0.0 and "sweep the number of consumers" in b.note


def test_webhook_costs_fold_requests_into_events_and_say_so(calibration):
    b = calibration.fit("webhook", "bytes")
    assert (b.per_request, b.per_event) == pytest.approx((0.0, 600.0))
    assert "folded" in b.note
    p = calibration.fit("webhook", "provider_cpu_s")
    assert (p.per_request, p.per_event, p.per_run) == pytest.approx((0.0, 0.002, 0.1))
    c = calibration.fit("webhook", "consumer_cpu_s")
    assert (c.per_event, c.per_run) == pytest.approx((0.001, 0.05))


def test_calibration_names_its_runs_and_machine(calibration):
    assert len(calibration.source_runs) == 3
    assert all(r.startswith("rate_per_s-") for r in calibration.source_runs)
    assert calibration.machine["cpu_count"] == 4 and calibration.machine["cpu_model"] == "Fixture CPU"
    d = calibration.to_dict()
    assert d["kind"] == "calibration" and d["fits"]["polling"]["bytes"]["per_request"] == pytest.approx(300.0)


def test_projection_at_100k_consumers(calibration):
    out = project(calibration, consumers=100_000, rate_per_s=50, poll_interval_s=1.0)
    assert out["kind"] == "projection"
    assert out["calibration"]["source_runs"] == list(calibration.source_runs)
    assert out["inputs"]["lambda_t"] == 50 and out["inputs"]["cores_per_server"] == 4
    poll, push = out["styles"]["polling"], out["styles"]["webhook"]
    assert poll["kind"] == push["kind"] == "projection"
    # polling: 5e6 deliveries/s, 1e5 polls/s
    assert poll["requests_per_s"] == pytest.approx(1e5) and poll["events_per_s"] == pytest.approx(5e6)
    assert poll["provider_cpu_s_per_s"] == pytest.approx(0.001 * 1e5 + 0.0005 * 5e6)  # 2600
    assert poll["provider_cores"] == pytest.approx(2600 / 0.7)
    assert poll["provider_servers"] == math.ceil(2600 / 0.7 / 4)  # 929
    assert poll["bandwidth_bytes_per_s"] == pytest.approx(300 * 1e5 + 250 * 5e6)
    assert poll["bandwidth_gbit_s"] == pytest.approx(10.24)
    assert poll["bytes_per_event"] == pytest.approx(256.0)
    # push: one request per delivery
    assert push["requests_per_s"] == pytest.approx(5e6)
    assert push["provider_cores"] == pytest.approx(10_000 / 0.7)
    assert push["bandwidth_gbit_s"] == pytest.approx(24.0)
    assert any("folded" in n for n in push["notes"])
    # per-run (start-up) costs are not projected
    assert poll["consumer_cpu_s_per_s"] == pytest.approx(0.002 * 1e5 + 0.0001 * 5e6)


def test_projection_variants_use_the_model_request_counts(calibration):
    batched = project(calibration, batch=10)["styles"]["webhook"]
    assert batched["requests_per_event"] == pytest.approx(0.1)
    long_poll = project(calibration, long_poll_wait_s=math.log(2) / 50)["styles"]["polling"]
    assert long_poll["requests_per_event"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        project(calibration, consumers=0)


def test_published_events_separate_from_deliveries_when_consumers_vary():
    import pandas as pd

    # 100 or 200 events published to 1, 4 or 10 consumers; polling at lambda T = 2 or 0.5.
    # provider CPU = 0.0004 per poll + 0.0001 per delivery + 0.002 per published event (hand-chosen)
    rows = []
    for i, (published, consumers, polls_per_consumer) in enumerate([(100, 1, 50), (200, 4, 100), (100, 10, 200), (200, 1, 100)]):
        requests, delivered = polls_per_consumer * consumers, published * consumers
        rows.append(
            {
                "style": "polling",
                "run_id": f"r{i}",
                "requests": requests,
                "delivered": delivered,
                "published": published,
                "provider_cpu_s": 0.0004 * requests + 0.0001 * delivered + 0.002 * published,
            }
        )
    fit = fit_costs(pd.DataFrame(rows), per_run=False).fit("polling", "provider_cpu_s")
    assert (fit.per_request, fit.per_event, fit.per_published) == pytest.approx((0.0004, 0.0001, 0.002))
    assert fit.terms == ("per_request", "per_event", "per_published") and fit.note == ""
    # the projection counts a published event once, not once per consumer
    from labkit.analysis.calibration import Calibration

    out = project(
        Calibration(fits={"polling": {"provider_cpu_s": fit}}, source_runs=("r0",)), consumers=1000, rate_per_s=10, poll_interval_s=1
    )
    assert out["styles"]["polling"]["provider_cpu_s_per_s"] == pytest.approx(
        0.0004 * 1000 + 0.0001 * 10_000 + 0.002 * 10
    )  # 1000 pollers at 1/s


def test_fit_refuses_empty_results():
    import pandas as pd

    with pytest.raises(ResultsError, match="cannot calibrate"):
        fit_costs(pd.DataFrame())


def test_negative_costs_are_held_at_zero():
    import pandas as pd

    # bytes fall as requests rise: an unconstrained fit would give a negative per-request cost
    df = pd.DataFrame(
        {
            "style": ["polling"] * 3,
            "run_id": ["a", "b", "c"],
            "requests": [10, 20, 30],
            "delivered": [100, 100, 110],
            "bytes_total": [30000.0, 29000.0, 31000.0],
        }
    )
    fit = fit_costs(df).fit("polling", "bytes")
    assert fit.per_request >= 0 and fit.per_event >= 0
    assert "held at zero" in fit.note
