"""A stream fleet of more streams than one process may open files for spreads over processes and loopback sources."""

from __future__ import annotations

import ipaddress
import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from labkit.config import StreamConsumerSettings
from labkit.consumers.streams import MAX_FLEET_PROCESSES, fleet_capacity, worker_settings
from labkit.servers import openfiles
from labkit.servers.procs import ProcessGroup

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def _settings(n: int, **extra: object) -> StreamConsumerSettings:
    return StreamConsumerSettings(base_url="http://127.0.0.1:1", connections=n, **extra)  # type: ignore[arg-type]


def _slices(workers: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(w["first_index"], w["connections"]) for w in workers]


def test_streams_within_one_process_budget_stay_in_one_process() -> None:
    workers = worker_settings(_settings(1000), per_process=1000, per_address=28_000)
    assert len(workers) == 1 and workers[0].get("source_address") is None


def test_more_streams_than_one_process_may_hold_split_over_processes() -> None:
    workers = worker_settings(_settings(45_000), per_process=19_488, per_address=50_000)
    assert len(workers) == 3  # ceil(45,000 / 19,488)
    assert _slices(workers) == [(0, 15_000), (15_000, 15_000), (30_000, 15_000)]  # contiguous: c0.. c44999, once each
    assert all(int(str(w["connections"])) <= 19_488 and w["processes"] == 1 for w in workers)
    assert all(w.get("source_address") is None for w in workers)  # within one address's ports: the kernel picks


def test_the_asked_processes_are_kept_when_more_than_the_budget_needs() -> None:
    assert len(worker_settings(_settings(100, processes=4), per_process=1000, per_address=28_000)) == 4


def test_past_one_address_ports_each_process_connects_from_its_own_loopback_address() -> None:
    workers = worker_settings(_settings(32_000), per_process=19_488, per_address=27_208)
    addresses = [str(w["source_address"]) for w in workers]
    assert len(workers) == 2 and addresses == ["127.0.0.2", "127.0.0.3"]
    assert all(ipaddress.ip_address(a) in LOOPBACK for a in addresses)
    # a share never exceeds one address's ports, even when a process could open more files
    wide = worker_settings(_settings(60_000), per_process=1_000_000, per_address=27_208)
    assert len(wide) == 3 and all(int(str(w["connections"])) <= 27_208 for w in wide)
    assert len({w["source_address"] for w in wide}) == 3


def test_the_fleet_capacity_is_its_processes_times_a_share() -> None:
    assert fleet_capacity(per_process=19_488, per_address=27_208) == MAX_FLEET_PROCESSES * 19_488
    assert fleet_capacity(per_process=1_000_000, per_address=27_208) == MAX_FLEET_PROCESSES * 27_208


@pytest.mark.parametrize("address", ["10.0.0.2", "0.0.0.0", "192.168.1.1", "127.0.0.256", "::1", "localhost", "127.1"])
def test_a_source_address_is_loopback_only(address: str) -> None:
    with pytest.raises(ValidationError, match="loopback"):
        _settings(1, source_address=address)
    assert _settings(1, source_address="127.0.0.9").source_address == "127.0.0.9"


def _low_hard_limit(limit: int) -> object:
    def setup() -> None:  # pragma: no cover - runs in the child before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return setup


@pytest.mark.slow  # a provider and a fleet of three processes on loopback, a few seconds
def test_a_fleet_with_few_open_files_runs_as_several_processes_from_its_source_address(tmp_path: Path) -> None:
    n, hard = 200, openfiles.RESERVE + 80  # 80 streams a process: three processes
    stats = tmp_path / "streams.stats.json"
    with ProcessGroup(tmp_path) as group:
        provider = group.start_server("provider", "provider", {"db_path": str(tmp_path / "p.db"), "rate_limit_per_s": 0})
        settings = {"base_url": provider.url, "connections": n, "stats_path": str(stats), "connect_spread_s": 0.2}
        settings |= {"source_address": "127.0.0.3", "record": False}
        (tmp_path / "fleet.json").write_text(json.dumps(settings))
        cmd = [sys.executable, "-m", "labkit.consumers.streams", str(tmp_path / "fleet.json")]
        fleet = subprocess.Popen(cmd, preexec_fn=_low_hard_limit(hard), stderr=subprocess.PIPE)  # noqa: PLW1509
        try:
            deadline = time.monotonic() + 60
            while not (stats.exists() and json.loads(stats.read_text() or "{}").get("counters", {}).get("connected") == n):
                assert fleet.poll() is None and time.monotonic() < deadline, "the fleet did not connect every stream"
                time.sleep(0.1)
            assert json.loads(stats.read_text())["processes"] == 3
            peers = {c.raddr.ip for c in psutil.Process(provider.pid).net_connections("tcp") if c.raddr and c.status == "ESTABLISHED"}
            assert peers == {"127.0.0.3"}  # every stream came from the fleet's loopback source address
        finally:
            fleet.send_signal(signal.SIGTERM)
            fleet.wait(timeout=30)
    assert fleet.returncode == 0
