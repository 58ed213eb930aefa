"""API keys and webhook secrets never appear in results, logs or the printed summary.

A short failure run (a receiver and a poller SIGKILLed and restarted) is made
with random keys and a random secret. They live only in the run's private
settings files (mode 0600) and databases; every file written under the
results folder, every server log and stats file, and the summary are searched
for each of them.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from labkit.config import RunSettings
from labkit.lab import pipeline
from labkit.wire.signing import PREFIX

pytestmark = pytest.mark.slow  # real servers for many seconds, a browser, benchmarks or Locust


def _secrets_of_the_run(work: Path) -> set[str]:
    found: set[str] = set()
    for path in work.rglob("*.settings.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        data = json.loads(path.read_text())
        found.update(data.get("api_keys", []))
        found.update(data.get("key_rate_limits", {}))
        found.update(data.get("secrets", []))
        if data.get("api_key"):
            found.add(data["api_key"])
    found |= {s[len(PREFIX) :] for s in found if s.startswith(PREFIX)}  # the bare base64 too
    return found


def test_keys_and_secrets_stay_out_of_results_and_logs(tmp_path: Path) -> None:
    settings = RunSettings(
        workload={"rate_per_s": 15.0, "duration_s": 2.0, "seed": 11},
        poll_interval_s=0.25,
        drain_timeout_s=20,
        experiment="failures",
        fault={"kind": "consumer_kill", "at_s": [0.8], "restart_after_s": 0.2},
    )
    work, results = tmp_path / "work", tmp_path / "results" / "run"
    result = pipeline.run(settings, work_dir=work, results_dir=results)
    assert all(s["fault"]["lost"] == 0 for s in result.summary["styles"].values())

    secrets = _secrets_of_the_run(work)
    assert len([s for s in secrets if s.startswith("lk_")]) >= 2 and any(s.startswith(PREFIX) for s in secrets)
    readable = [p for p in results.rglob("*") if p.is_file()]
    readable += [p for p in work.rglob("*") if p.is_file() and (p.suffix == ".log" or p.name.endswith("stats.json"))]
    assert any(p.name == "summary.json" for p in readable) and any(p.suffix == ".log" for p in readable)
    printed = json.dumps(result.summary).encode()
    for secret in secrets:
        needle = secret.encode()
        assert needle not in printed
        for path in readable:
            assert needle not in path.read_bytes(), f"{secret[:6]}... found in {path}"
