import json

import pytest

from labkit.errors import ResultsError
from labkit.results.layout import SCHEMA_VERSION, load_results, read_summary, write_json


def _summary(run_id="r1"):
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "workload": {"arrival": "poisson", "rate_per_s": 10.0},
        "styles": {
            "webhook": {"published": 5, "latency_ms": {"p50": 1.5}, "model": {"requests_per_event": 1.0}},
            "polling": {"published": 5, "latency_ms": {"p50": 500.0}, "model": {"requests_per_event": 0.1}},
        },
    }


def test_load_results_one_row_per_style_with_model_beside(tmp_path):
    write_json(tmp_path / "a" / "summary.json", _summary("a"))
    write_json(tmp_path / "b" / "summary.json", _summary("b"))
    df = load_results(tmp_path)
    assert len(df) == 4
    assert set(df["style"]) == {"webhook", "polling"}
    assert {"latency_ms.p50", "model.requests_per_event", "workload.rate_per_s"} <= set(df.columns)
    row = df[(df.run_id == "a") & (df["style"] == "polling")].iloc[0]
    assert row["latency_ms.p50"] == 500.0 and row["model.requests_per_event"] == 0.1


def test_unknown_schema_version_is_refused(tmp_path):
    data = _summary()
    data["schema_version"] = 99
    (tmp_path / "summary.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="unknown schema_version 99"):
        read_summary(tmp_path)


def test_corrupted_file_is_refused(tmp_path):
    (tmp_path / "summary.json").write_text('{"schema_version": 1, "run')
    with pytest.raises(ResultsError, match="corrupted"):
        load_results(tmp_path)


def test_missing_results(tmp_path):
    with pytest.raises(ResultsError, match="no such results"):
        load_results(tmp_path / "nope")
    with pytest.raises(ResultsError, match="holds no summary.json"):
        load_results(tmp_path)
