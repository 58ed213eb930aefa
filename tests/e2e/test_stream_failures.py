"""Held streams under faults, on real processes: cut, SIGKILLed consumers and a SIGKILLed provider lose nothing.

Each stream resumes after its last id, and the fleet records an event with its
cursor in one transaction, so every committed event reaches every consumer
once. Duplicates seen and catch-up are reported, not held to thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.faults import no_loss, run_fault

pytestmark = pytest.mark.slow  # real servers for many seconds per style

STREAMS = ("sse", "websocket")


def _run(tmp_path: Path, fault: dict[str, Any]) -> dict[str, Any]:
    return run_fault(tmp_path, fault, STREAMS, pollers=3)


def _no_loss(style: dict[str, Any]) -> dict[str, Any]:
    return no_loss(style, every_consumer=True)


def test_streams_cut_twice_resume_and_lose_nothing(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"kind": "stream_drop", "at_s": [0.8, 2.0]})
    for name in STREAMS:
        style = summary["styles"][name]
        f = _no_loss(style)
        assert f["forced_disconnects"] >= 2 * 3 and style["reconnects"] >= 2 * 3  # (the fleet also cuts its streams when it stops)
        assert len(f["episodes"]) == 2 and all(e["catch_up_s"] is not None for e in f["episodes"])


def test_stream_fleet_sigkilled_twice_loses_nothing(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"kind": "consumer_kill", "at_s": [0.8, 2.0], "restart_after_s": 0.2})
    for name in STREAMS:
        f = _no_loss(summary["styles"][name])
        assert f["consumer_restarts"] == 2 and all(e["catch_up_s"] is not None for e in f["episodes"])


def test_provider_sigkilled_and_restarted_streams_lose_nothing(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"kind": "provider_kill", "at_s": [1.5], "restart_after_s": 0.3})
    for name in STREAMS:
        style = summary["styles"][name]
        f = _no_loss(style)
        assert f["provider_restarts"] == 1 and style["reconnects"] >= 3
        assert f["episodes"][0]["catch_up_s"] is not None


def test_streams_through_a_bad_network_with_resets_lose_nothing(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"kind": "network", "delay_ms": 20.0, "jitter_ms": 10.0, "loss": 0.02, "reset": 0.02})
    for name in STREAMS:
        f = _no_loss(summary["styles"][name])
        assert f["network"]["emulation"] and f["kind"] == "network"
