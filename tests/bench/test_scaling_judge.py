"""How the process-scaling targets are judged: the raw ratio with N + 1 cores, else the per-CPU efficiency (no bench run)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labkit.bench.cases import plan
from labkit.bench.scaling import judge_basis, per_cpu_efficiency
from labkit.bench.suite import build_summary


def _scaling(cores: int, n: int, raw: float, eff: float) -> dict[str, Any]:
    block = {"ratio": raw, "cpu_efficiency": eff}
    return {"process_scaling": {"cores": cores, "processes": n, "pollers": dict(block), "receiver": dict(block)}}


def test_the_basis_is_raw_only_with_a_core_for_each_process_and_the_counterpart() -> None:
    assert judge_basis(3, 2)[0] == "raw"
    assert judge_basis(8, 4)[0] == "raw"
    judged, reason = judge_basis(2, 2)
    assert judged == "cpu_efficiency" and "2 cores" in reason and "N + 1 = 3" in reason
    assert judge_basis(None, None)[0] == "raw"


def test_per_cpu_efficiency_compares_work_per_cpu_second() -> None:
    # N: 1500/s on 1.5 CPU = 1000 per CPU-s; 1: 1000/s on 0.8 CPU = 1250 per CPU-s -> 0.8
    assert per_cpu_efficiency([(1500.0, 1.5)], [(1000.0, 0.8)]) == pytest.approx(0.8)
    # the median of the pairs; a pair without a CPU reading is left out
    assert per_cpu_efficiency([(100.0, 1.0), (90.0, 1.0), (80.0, None)], [(100.0, 1.0), (100.0, 1.0), (100.0, 1.0)]) == pytest.approx(0.95)
    assert per_cpu_efficiency([(1.0, None)], [(1.0, 1.0)]) is None


def test_two_cores_judge_the_efficiency_and_keep_the_raw_ratio() -> None:
    doc = build_summary("r", plan(tiny=True), "wrk", _scaling(cores=2, n=2, raw=0.51, eff=0.93), {}, 1.0)
    assert doc["ratios"]["scaling_pollers"] == 0.51 and doc["ratios"]["scaling_pollers_cpu"] == 0.93
    t = doc["targets"]["scaling_pollers"]
    assert t["judged"] == "cpu_efficiency" and t["value"] == 0.93 and t["pass"] is True
    assert t["raw_value"] == 0.51 and t["metric"] == "ratios.scaling_pollers_cpu" and "N + 1" in t["reason"]
    json.dumps(doc, allow_nan=False)


def test_an_inefficient_split_still_misses_on_two_cores() -> None:
    doc = build_summary("r", plan(tiny=True), "wrk", _scaling(cores=2, n=2, raw=0.9, eff=0.6), {}, 1.0)
    t = doc["targets"]["scaling_receiver"]
    assert t["judged"] == "cpu_efficiency" and t["pass"] is False


def test_enough_cores_judge_the_raw_ratio() -> None:
    doc = build_summary("r", plan(tiny=True), "wrk", _scaling(cores=4, n=3, raw=0.61, eff=0.99), {}, 1.0)
    t = doc["targets"]["scaling_receiver"]
    assert t["judged"] == "raw" and t["metric"] == "ratios.scaling_receiver" and t["value"] == 0.61 and t["pass"] is False
    assert t["cpu_efficiency_value"] == 0.99


def test_other_targets_keep_their_record_shape() -> None:
    doc = build_summary("r", plan(tiny=True), "wrk", {"dispatcher": {"ratio": 0.7}}, {}, 1.0)
    assert set(doc["targets"]["dispatcher"]) == {"metric", "op", "target", "value", "pass", "what"}
    assert doc["targets"]["dispatcher"]["pass"] is True


def test_the_table_puts_the_verdict_on_the_ratio_judged() -> None:
    from labkit.bench.table import rows

    results = _scaling(cores=2, n=2, raw=0.55, eff=1.0)
    ps = results["process_scaling"]
    ps["judged"] = "cpu_efficiency"
    ps["pollers"] |= {"one": {"achieved_polls_per_s": 5000.0, "polls_per_cpu_s": 10000.0}, "n": {"achieved_polls_per_s": 5500.0}}
    ps["receiver"] |= {"one": {"rps": 2000.0}, "n": {"rps": 1500.0}}
    doc = build_summary("r", plan(tiny=True), "wrk", results, {}, 1.0)
    table = {row[0].strip(): row for row in rows(doc)}
    assert table["polls/s, 2 processes vs 1 (2 cores)"][3:] == ("0.55", "judged below")
    assert table["polls per fleet CPU-s"][2:] == ("10,000", "1.00", ">= 0.8: pass")
    assert table["req per receiver CPU-s"][4] == ">= 0.8: pass"
