"""Schema-driven fuzzing (schemathesis) of the provider's and the receiver's APIs over real HTTP.

Each operation of ``provider_openapi()`` and ``receiver_openapi()`` gets
examples that follow the schema (positive) and examples that break it
(negative), sent to real server processes. No answer may be a 5xx, no server
may crash or log a traceback. Bounded: a fixed number of examples per
operation and mode, derandomized, well under a minute.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from labkit.consumers.openapi import receiver_openapi
from labkit.provider.openapi import provider_openapi
from labkit.servers.procs import Child, ProcessGroup
from labkit.wire.signing import new_secret

pytestmark = pytest.mark.slow  # real servers for many seconds, a browser, benchmarks or Locust


KEY = "lk_fuzz_key"
EXAMPLES = 40
# IP-literal callback URLs: a generated host name would cost a DNS lookup per example.
CALLBACK = r"^https?://127\.0\.0\.1:[0-9]{1,5}/[a-z0-9/]{0,12}$"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Child]]:
    work = tmp_path_factory.mktemp("fuzz")
    secret = new_secret()
    with ProcessGroup(work) as group:
        yield {
            "provider": group.start_server(
                "provider",
                "provider",
                {
                    "db_path": str(work / "p.db"),
                    "api_keys": [KEY],
                    "rate_limit_per_s": 0,
                    "max_wait_s": 0.2,
                    "allowed_callback_hosts": ["127.0.0.1"],
                },
            ),
            "receiver": group.start_server("receiver", "receiver", {"secrets": [secret], "db_path": str(work / "r.db")}),
            "receiver-unverified": group.start_server(
                "receiver-unverified", "receiver", {"secrets": [secret], "verify": False, "db_path": str(work / "u.db")}
            ),
        }


def fuzz(schema_doc: dict[str, Any], base_url: str, headers: dict[str, str]) -> dict[str, dict[int, int]]:
    """Run every operation in both modes; return status counts per operation; fail on a 5xx."""
    schema = schemathesis.openapi.from_dict(schema_doc)
    seen: dict[str, dict[int, int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            counts = seen.setdefault(f"{operation.label} [{mode.value}]", {})
            try:
                _fuzz_operation(operation, mode, base_url, headers, counts)
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise  # only an operation with nothing to break (GET /healthz) has no negative examples
    return seen


def _fuzz_operation(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], counts: dict[int, int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=15)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
            reject()  # the client could not even send it
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"

    run()


def _healthy(child: Child) -> None:
    assert child.alive(), child.log_tail()
    assert httpx.get(f"{child.url}/healthz", timeout=10).status_code == 200
    log = child.log_path.read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-2000:]


def test_provider_api_survives_fuzzing(servers: dict[str, Child]) -> None:
    provider = servers["provider"]
    headers = {"authorization": f"Bearer {KEY}"}
    # A real subscription, so the /subscriptions/{sub_id}/... operations reach their handlers.
    sub = httpx.post(f"{provider.url}/subscriptions", json={"url": "http://127.0.0.1:9/hook"}, headers=headers, timeout=10).json()["id"]
    httpx.post(f"{provider.url}/events", json={"type": "t", "payload": {}}, headers=headers, timeout=10)
    doc = provider_openapi(max_wait_s=0.2, callback_url_pattern=CALLBACK)
    doc = copy.deepcopy(doc)
    for item in doc["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["name"] == "sub_id":
                    param["schema"] = {"type": "string", "enum": [sub, "sub_0000000000000000"]}
    seen = fuzz(doc, provider.url, headers)
    assert any(200 <= s < 300 for counts in seen.values() for s in counts)  # the fuzzer got past validation too
    assert any(400 <= s < 500 for counts in seen.values() for s in counts)
    _healthy(provider)


@pytest.mark.parametrize("which", ["receiver", "receiver-unverified"])
def test_receiver_api_survives_fuzzing(servers: dict[str, Child], which: str) -> None:
    receiver = servers[which]
    seen = fuzz(receiver_openapi(), receiver.url, {})
    webhook_statuses = {s for label, counts in seen.items() if "/webhook" in label for s in counts}
    if which == "receiver":
        assert webhook_statuses <= {400, 401, 413, 422}  # nothing unsigned gets in
    _healthy(receiver)
