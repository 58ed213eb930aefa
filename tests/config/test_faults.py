"""Fault plans as settings: validated, immutable, and honest about which styles they apply to."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from labkit import styles
from labkit.config import RunSettings
from labkit.config.faults import FAMILIES, KINDS, ConsumerKill, FaultPlan, NetworkFault, ReceiverDead
from labkit.errors import ConfigError
from labkit.runs.experiments import load_experiment

REPO = Path(__file__).resolve().parents[2]


def test_every_kind_has_defaults_that_validate() -> None:
    for kind in KINDS:
        first = styles.fault_styles(TypeAdapter(FaultPlan).validate_python({"kind": kind}))[0]
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
    # a plan names the families it applies to; the style registry judges a run's styles against them
    for kind in ("receiver_slow", "receiver_errors", "receiver_gone", "receiver_dead"):
        with pytest.raises(ConfigError, match="does not apply to 'polling'; set styles to 'webhook'"):
            styles.check(RunSettings(fault={"kind": kind}))
    styles.check(settings := RunSettings(fault={"kind": "throttle"}))
    assert styles.resolve(settings).styles == ("webhook", "polling")  # the default comparison


def test_fault_plans_apply_per_family_and_the_registry_names_the_styles() -> None:
    plans = {kind: TypeAdapter(FaultPlan).validate_python({"kind": kind}) for kind in KINDS}
    assert all(set(p.families) <= set(FAMILIES) for p in plans.values())
    assert styles.fault_styles(plans["receiver_gone"]) == styles.styles_of("push") == ("webhook", "hybrid")
    assert styles.fault_styles(plans["stream_drop"]) == styles.styles_of("stream") == ("sse", "websocket")
    assert styles.fault_styles(plans["throttle"]) == ("webhook", "polling", "hybrid")
    assert styles.fault_styles(plans["consumer_kill"]) == styles.names()


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
