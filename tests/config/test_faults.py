"""Fault plans as settings: validated, immutable, and honest about which styles they apply to."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from labkit.config import RunSettings
from labkit.config.faults import KINDS, ConsumerKill, FaultPlan, NetworkFault, ReceiverDead
from labkit.runs.experiments import load_experiment

REPO = Path(__file__).resolve().parents[2]


def test_every_kind_has_defaults_that_validate() -> None:
    for kind in KINDS:
        first = TypeAdapter(FaultPlan).validate_python({"kind": kind}).styles[0]
        plan = RunSettings(fault={"kind": kind}, styles=(first,)).fault
        assert plan is not None and plan.kind == kind and plan.describe()


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "meteor"},
        {"kind": "consumer_kill", "at_s": []},
        {"kind": "consumer_kill", "at_s": [2.0, 1.0]},
        {"kind": "consumer_kill", "rate": 0.5},
        {"kind": "receiver_slow", "delay_ms": 500.0, "delivery_timeout_s": 1.0},
        {"kind": "network", "loss": 0.9},
        {"kind": "throttle", "rate": 0},
    ],
)
def test_bad_plans_are_refused(fault: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RunSettings(fault=fault, styles=("webhook",))


def test_webhook_only_faults_refuse_polling() -> None:
    for kind in ("receiver_slow", "receiver_errors", "receiver_gone", "receiver_dead"):
        with pytest.raises(ValidationError, match="does not apply to 'polling'"):
            RunSettings(fault={"kind": kind})
    assert RunSettings(fault={"kind": "throttle"}).styles == ("webhook", "polling")


def test_plans_are_immutable_and_lists_become_tuples() -> None:
    plan = ConsumerKill.model_validate({"kind": "consumer_kill", "at_s": [1, 2]}, strict=True)
    assert plan.at_s == (1.0, 2.0)
    with pytest.raises(ValidationError):
        plan.at_s = (3.0,)  # type: ignore[misc]
    assert NetworkFault().describe().startswith("network +20")


def test_the_shipped_failure_experiment_covers_every_fault_and_both_styles() -> None:
    exp = load_experiment(REPO / "scenarios" / "experiments" / "failures.toml")
    kinds = {p.settings.fault.kind for p in exp.points if p.settings.fault is not None}
    assert kinds == set(KINDS)
    both = [p for p in exp.points if p.settings.styles == ("webhook", "polling")]
    assert {p.settings.fault.kind for p in both} >= {"consumer_kill", "provider_kill", "consumer_down", "network"}  # type: ignore[union-attr]
    total_s = sum(p.settings.workload.duration_s * len(p.settings.styles) for p in exp.points)
    assert total_s < 150  # publishing time; the whole experiment runs in a few minutes


def test_receiver_dead_carries_the_providers_disable_window() -> None:
    plan = RunSettings(fault={"kind": "receiver_dead", "at_s": 1.0, "disable_after_s": 1800.0}, styles=("webhook",)).fault
    assert isinstance(plan, ReceiverDead) and plan.status == 503 and plan.disable_after_s == 1800.0
    assert not plan.promises_no_loss and "disabled" in plan.describe()
    with pytest.raises(ValidationError):
        RunSettings(fault={"kind": "receiver_dead", "status": 410}, styles=("webhook",))
