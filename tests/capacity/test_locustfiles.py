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


PER_CONSUMER_SCRIPT = """
from gevent import monkey; monkey.patch_all()
from types import SimpleNamespace
from labkit.capacity import locustlib
from labkit.wire.signing import consumer_of_key
options = SimpleNamespace(audience="per-consumer", consumer_key_secret="s" * 32, consumers=3, worker_count=1,
                          api_key="lab-key", start_cursor="0", page_limit=100, long_poll_wait=0.0)
env = SimpleNamespace(parsed_options=options, runner=None)
keys = [locustlib.Feed.from_environment(env).headers["authorization"].removeprefix("Bearer ") for _ in range(4)]
print(",".join(str(consumer_of_key("s" * 32, k)) for k in keys))
"""


def test_a_per_consumer_user_polls_with_its_own_consumers_key():
    # in a child: Locust monkey-patches the interpreter it is imported into
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", PER_CONSUMER_SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "c0,c1,c2,c0"  # each user its own consumer's key, round again past --consumers
