"""Issue 24, item 2: a capacity run leaves no webhook secret (nor database) under its results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # Locust and two servers for about 15 s each

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", ["webhook_ingest", "publish_fanout"])
def test_capacity_results_hold_no_secret(tmp_path: Path, scenario: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "capacity", scenario, "--max-users", "4", "--duration", "10", "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "capacity.json" for p in files)
    leaked = [str(p) for p in files if b"whsec_" in p.read_bytes()]
    assert leaked == []
    assert not [p for p in files if p.name.endswith((".settings.json", ".db"))]
    assert any(p.parent.name == "servers" and p.suffix == ".log" for p in files), "the servers' logs are kept"
