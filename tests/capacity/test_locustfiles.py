"""The locustfiles define User classes and nothing else happens when they are imported.

Importing Locust monkey-patches the process with gevent, so each import runs
in a subprocess of its own, with every way out to the network blocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"

PROBE = r"""
import json, socket, sys
def refuse(*a, **k):
    raise AssertionError("network access at import")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from locust.util.load_locustfile import load_locustfile
users, shapes = load_locustfile(sys.argv[1])
print(json.dumps({"users": sorted(users), "shapes": [type(s).__name__ for s in shapes],
                  "hosts": {n: u.host for n, u in users.items()}}))
"""


def load(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path)], check=False, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.slow  # Locust (gevent) imported in a subprocess per file


@pytest.mark.parametrize(
    "name, user",
    [("polling.py", "Poller"), ("webhook_ingest.py", "WebhookSender"), ("publish_fanout.py", "Publisher")],
)
def test_scenario_defines_its_user_and_no_shape(name, user):
    found = load(SCENARIOS / name)
    assert found["users"] == [user]
    assert found["shapes"] == [], "a shape in the scenario would override -u/-r/-t"
    assert all(h.startswith("http://127.0.0.1:") for h in found["hosts"].values())


@pytest.mark.parametrize("name, shape", [("step_shape.py", "StepShape"), ("ramp_shape.py", "RampShape")])
def test_shape_locustfiles_hold_one_shape_each(name, shape):
    found = load(ROOT / "labkit" / "capacity" / "locustfiles" / name)
    assert found == {"users": [], "shapes": [shape], "hosts": {}}
