"""HTTPS mode: lab certificates from trustme, webhooks and polls over TLS, and what a handshake costs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from labkit.consumers import records
from labkit.servers.procs import ProcessGroup
from labkit.servers.tls import make_certificates, measure_handshake_cost
from labkit.wire.signing import new_secret
from tests.helpers.security import auth, wait_for

KEY = "lk_tls_key"


pytestmark = pytest.mark.slow  # servers over TLS for many seconds


def test_webhooks_and_polls_go_over_https_with_the_lab_ca(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    secret = new_secret()
    with ProcessGroup(tmp_path) as group, httpx.Client(verify=str(certs.ca_file), timeout=15) as client:
        receiver = group.start_server("receiver", "receiver", {"secrets": [secret], "db_path": str(tmp_path / "r.db")}, tls=certs.server)
        provider = group.start_server(
            "provider",
            "provider",
            {"db_path": str(tmp_path / "p.db"), "api_keys": [KEY], "allowed_callback_hosts": ["127.0.0.1"], "ca_file": str(certs.ca_file)},
            tls=certs.server,
        )
        assert receiver.url.startswith("https://") and provider.url.startswith("https://")
        r = client.post(f"{provider.url}/subscriptions", json={"url": f"{receiver.url}/webhook/s0", "secret": secret}, headers=auth(KEY))
        assert r.status_code == 201
        poller = group.start_worker(
            "poller",
            "poller",
            {
                "base_url": provider.url,
                "api_key": KEY,
                "interval_s": 0.1,
                "db_path": str(tmp_path / "poll.db"),
                "ca_file": str(certs.ca_file),
            },
        )
        ids = [
            client.post(f"{provider.url}/events", json={"type": "t", "payload": {"i": i}}, headers=auth(KEY)).json()["id"] for i in range(3)
        ]
        assert wait_for(lambda: records.received_counts(str(tmp_path / "r.db")).get("s0") == 3)
        assert wait_for(lambda: records.received_counts(str(tmp_path / "poll.db")).get("p0") == 3)
        assert sorted(e for _, e, _ in records.load_events(str(tmp_path / "r.db"))) == sorted(ids)
        assert poller.alive()

        # A client that does not trust the lab CA refuses the certificate; plain HTTP gets no answer.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{receiver.url}/healthz", verify=True, timeout=5)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{receiver.port}/healthz", timeout=5)


def test_handshake_cost_is_measured_for_each_mode(tmp_path: Path) -> None:
    result = measure_handshake_cost(requests=10, warmup=2, work_dir=tmp_path)
    assert set(result["modes"]) == {"http_reused", "http_fresh", "https_reused", "https_fresh"}
    for mode in result["modes"].values():
        assert mode["wall_ms_median"] > 0 and mode["client_cpu_ms"] >= 0
    assert result["tls"]["version"].startswith("TLS")
    assert set(result["handshake"]) == {"wall_ms", "client_cpu_ms", "server_cpu_ms"}
