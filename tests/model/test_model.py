"""The model's formulas against values computed by hand."""

import math

import pytest

from labkit import model


def test_polling_delay_mean_is_half_the_period_plus_rtt():
    assert model.polling_delay_mean_s(2.0, 0.01) == pytest.approx(1.01)


def test_polling_delay_quantile_is_uniform():
    assert model.polling_delay_quantile_s(0.99, 1.0) == pytest.approx(0.99)
    assert model.polling_delay_quantile_s(0.5, 4.0, 0.002) == pytest.approx(2.002)
    with pytest.raises(ValueError):
        model.polling_delay_quantile_s(1.5, 1.0)


def test_empty_poll_probability_poisson_and_constant():
    assert model.empty_poll_probability(1.0, 1.0) == pytest.approx(0.36787944)
    assert model.empty_poll_probability(0.1, 1.0) == pytest.approx(0.90483742)
    assert model.empty_poll_probability(10.0, 1.0) == pytest.approx(4.539993e-05)
    assert model.empty_poll_probability(0.25, 2.0, "constant") == pytest.approx(0.5)
    assert model.empty_poll_probability(5.0, 1.0, "constant") == 0.0


def test_requests_per_event_and_crossover():
    assert model.polling_requests_per_event(0.5, 1.0) == pytest.approx(2.0)
    assert model.polling_requests_per_event(10.0, 1.0) == pytest.approx(0.1)
    # 250 events per poll with pages of 100 -> 3 requests per poll
    assert model.polling_requests_per_event(250.0, 1.0, page_limit=100) == pytest.approx(3 / 250)
    assert model.push_requests_per_event() == 1.0
    assert model.push_requests_per_event(batch=10) == pytest.approx(0.1)
    assert model.push_requests_per_event(retries_per_event=0.5) == pytest.approx(1.5)
    assert model.crossover_lambda_t() == 1.0
    assert model.crossover_lambda_t(4) == 0.25
    # at the crossover both cost one request per event
    assert model.polling_requests_per_event(1.0, 1.0) == model.push_requests_per_event()


def test_long_poll_requests_per_event():
    # lambda W = ln 2 -> half the long polls time out -> 2 requests per event
    assert model.long_poll_requests_per_event(math.log(2), 1.0) == pytest.approx(2.0)


def test_snapshot_fraction_seen():
    assert model.snapshot_fraction_seen(1.0, 1.0) == pytest.approx(1 - math.exp(-1))
    assert model.snapshot_fraction_seen(2.0, 2.0, "constant") == pytest.approx(0.25)
    assert model.snapshot_fraction_seen(0.1, 1.0, "constant") == 1.0


def test_zapier_figure_is_lambda_t_of_about_0015():
    wasted = model.zapier_wasted_ratio()
    assert wasted == pytest.approx(0.98467, abs=1e-4)
    assert model.lambda_t_for_wasted_ratio(wasted) == pytest.approx(0.01545, abs=2e-4)


def test_polling_model_block_is_labelled_as_model():
    m = model.polling_model(50, 1.0, 0.002)
    assert m["kind"] == "model"
    assert m["latency_mean_ms"] == pytest.approx(502.0)
    assert m["latency_p99_ms"] == pytest.approx(992.0)
    assert m["requests_per_event"] == pytest.approx(0.02)


# -- bytes per event per consumer, and the crossover in bytes (hand-computed) ------------


def test_polling_bytes_per_event():
    # lambda T = 1: one 300 B poll per event, plus the event's 250 B
    assert model.polling_bytes_per_event(1.0, 1.0, 300, 250) == pytest.approx(550.0)
    # lambda T = 0.1: ten polls per event
    assert model.polling_bytes_per_event(0.1, 1.0, 300, 250) == pytest.approx(3250.0)
    # empty polls answered by a 100 B 304: 300 - 200 e^-1 + 250
    assert model.polling_bytes_per_event(1.0, 1.0, 300, 250, empty_request_bytes=100) == pytest.approx(476.4241, abs=1e-3)
    with pytest.raises(ValueError):
        model.polling_bytes_per_event(0.0, 1.0, 300, 250)


def test_long_poll_bytes_per_event():
    # lambda W = ln 2 -> two requests per event
    assert model.long_poll_bytes_per_event(math.log(2), 1.0, 300, 250) == pytest.approx(850.0)


def test_push_bytes_per_event_variants():
    assert model.push_bytes_per_event(400, 250) == pytest.approx(650.0)
    assert model.push_bytes_per_event(400, 250, batch=10) == pytest.approx(290.0)
    assert model.push_bytes_per_event(400, 250, retries_per_event=0.5) == pytest.approx(975.0)
    # thin: a 60 B notification, then a 550 B fetch of the body
    assert model.push_bytes_per_event(400, 60, thin_fetch_bytes=550) == pytest.approx(1010.0)
    with pytest.raises(ValueError):
        model.push_bytes_per_event(400, 250, batch=0)


def test_thin_push_requests_per_event():
    assert model.thin_push_requests_per_event() == pytest.approx(2.0)
    assert model.thin_push_requests_per_event(batch=10) == pytest.approx(1.1)


def test_bytes_crossover_lambda_t():
    # polling 300/(lambda T) + 250 against push 400 + 250: equal at lambda T = 0.75
    assert model.bytes_crossover_lambda_t(300, 250, 400, 250) == pytest.approx(0.75)
    assert model.polling_bytes_per_event(0.75, 1.0, 300, 250) == pytest.approx(model.push_bytes_per_event(400, 250))
    # batches of 10: push costs 290, polling gets there at lambda T = 7.5
    assert model.bytes_crossover_lambda_t(300, 250, 400, 250, batch=10) == pytest.approx(7.5)
    # push cheaper per event than polling's event share: polling never catches up
    assert model.bytes_crossover_lambda_t(300, 250, 0, 200) == math.inf
