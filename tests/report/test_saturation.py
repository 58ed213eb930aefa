"""A run whose provider used its whole core is named as such: its latency is a queue, not the style."""

from __future__ import annotations

from pathlib import Path

from labkit.report.observations import Obs
from labkit.report.reasons import Case
from labkit.report.requirements import load_requirements
from labkit.report.saturation import provider_cores, saturation_reasons, saturation_words

REQS = Path(__file__).resolve().parents[2] / "scenarios" / "requirements"


def _obs(run_id: str, cpu_s: float, **extra: float) -> Obs:
    row = {"provider_cpu_s": cpu_s, "workload.duration_s": 40.0, "drain_s": 4.0, "delivered": 44_000, "latency_ms.p99": 5239.0, **extra}
    return Obs(run_id, "webhook", "webhook push", 0.5, None, None, 2000, "poisson", row)


def test_a_provider_busy_the_whole_run_gets_a_reason_and_a_gap() -> None:
    case = Case(load_requirements(REQS / "payments-provider.toml"), [_obs("busy", 44.0)])
    saturation_reasons(case)
    assert provider_cores(case.obs[0]) == 1.0
    (reason,) = case.reasons
    assert "kept 1.00 cores busy" in reason.text and "1,000 deliveries per CPU-second" in reason.text
    # 2,000 merchants x 0.5 events/s = 1,000 deliveries/s over 700 per process at 70 % load: 2 processes
    assert "about 2 provider processes" in reason.text
    assert {e.column for e in reason.evidence} >= {"provider_cpu_s", "latency_ms.p99", "delivered"}
    (gap,) = case.gaps
    assert gap.affects == "decision" and "--max-deliveries-per-s 700" in gap.command
    assert saturation_words(case.obs[0]) is not None


def test_a_provider_with_room_to_spare_is_not_flagged() -> None:
    case = Case(load_requirements(REQS / "payments-provider.toml"), [_obs("idle", 10.0)])
    saturation_reasons(case)
    assert case.reasons == [] and case.gaps == []
    assert saturation_words(case.obs[0]) is None


def test_a_pulled_style_is_judged_on_the_polls_it_answered() -> None:
    o = _obs("polls", 44.0, polls=88_000.0)
    o = Obs("polls", "polling", "polling", 0.5, 0.15, 0.075, 150, "poisson", o.row)
    case = Case(load_requirements(REQS / "payments-provider.toml"), [o])
    saturation_reasons(case)
    (reason,) = case.reasons
    assert "2,000 polls per CPU-second" in reason.text  # 88,000 polls / 44 CPU-s
    assert "--max-polls-per-s" in case.gaps[0].command
