"""Server-side request forgery: subscription URLs aimed at the provider's own network are refused.

A real provider process whose allow-list names only 127.0.0.2 refuses every
private, loopback, link-local, metadata and otherwise non-public target (and
non-http schemes) with 422 and stores nothing. A host name that looked
public when subscribing but resolves to loopback at delivery time (DNS
rebinding) is refused by the dispatcher when it connects.
"""

from __future__ import annotations

import ipaddress
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labkit.config import ProviderSettings
from labkit.provider import ssrf
from labkit.provider.app import create_app
from labkit.servers.procs import Child, ProcessGroup
from tests.helpers.loopback import ServerThread
from tests.helpers.security import CaptureServer, auth, wait_for

KEY = "lk_ssrf_key"

REFUSED = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata (AWS, GCP, Azure)
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://metadata.google.internal/computeMetadata/v1/",  # does not resolve here: refused as well
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/admin",
    "http://100.64.0.1/hook",  # carrier-grade NAT: not global
    "http://127.0.0.1:8080/hook",  # loopback is not allowed by default (only 127.0.0.2 is listed)
    "http://localhost:8080/hook",
    "http://[::1]:8080/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "http://0.0.0.0:8080/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f.0.0.1/hook",  # and in hex
    "http://169.254.0.1/hook",  # link-local
    "http://224.0.0.1/hook",  # multicast
    "http://user:secret@127.0.0.2/hook",  # credentials in the URL
    "file:///etc/passwd",
    "gopher://127.0.0.2:25/_HELO",
    "ftp://127.0.0.2/",
    "http://127.0.0.2\r\nX-Injected: 1/hook",
    "http:///nohost",
]


@pytest.fixture(scope="module")
def strict_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    work = tmp_path_factory.mktemp("ssrf")
    with ProcessGroup(work) as group:
        yield group.start_server(
            "provider",
            "provider",
            {"db_path": str(work / "provider.db"), "api_keys": [KEY], "rate_limit_per_s": 0, "allowed_callback_hosts": ["127.0.0.2/32"]},
        )


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_targets_are_refused_and_nothing_is_stored(strict_provider: Child, url: str) -> None:
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{strict_provider.url}/subscriptions", json={"url": url}, headers=auth(KEY))
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["detail"].startswith("url:")
        listed = client.get(f"{strict_provider.url}/subscriptions", headers=auth(KEY)).json()["data"]
        assert all(s["url"] != url for s in listed)
        assert not [s for s in listed if "127.0.0.2" not in s["url"]]


def test_an_allow_listed_network_is_accepted(strict_provider: Child) -> None:
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{strict_provider.url}/subscriptions", json={"url": "http://127.0.0.2:9/hook"}, headers=auth(KEY))
        assert r.status_code == 201
        client.delete(f"{strict_provider.url}/subscriptions/{r.json()['id']}", headers=auth(KEY))


def _attempt_errors(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] or "" for r in con.execute("SELECT error FROM attempts")]
    except sqlite3.Error:
        return []
    finally:
        con.close()


def test_dns_rebinding_is_refused_when_the_dispatcher_connects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rebind.test resolves to a public address when subscribing and to 127.0.0.1 when delivering."""
    original = ssrf._resolve
    real_getaddrinfo = socket.getaddrinfo

    def resolve_at_subscription(host: str, port: int) -> list[ssrf.IPAddress]:
        return [ipaddress.ip_address("93.184.216.34")] if host == "rebind.test" else original(host, port)

    def getaddrinfo_at_delivery(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
        return real_getaddrinfo("127.0.0.1" if name == "rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(ssrf, "_resolve", resolve_at_subscription)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo_at_delivery)
    db = tmp_path / "provider.db"
    settings = ProviderSettings(db_path=str(db), api_keys=(KEY,), rate_limit_per_s=0, retry_schedule_s=(0, 0), time_scale=0.001)
    with CaptureServer() as capture, ServerThread(create_app(settings), loop="asyncio") as provider, httpx.Client(timeout=15) as client:
        r = client.post(f"{provider.url}/subscriptions", json={"url": f"http://rebind.test:{capture.port}/hook"}, headers=auth(KEY))
        assert r.status_code == 201, r.text  # it looked public
        assert client.post(f"{provider.url}/events", json={"type": "t", "payload": {}}, headers=auth(KEY)).status_code == 201
        errors = wait_for(lambda: len(_attempt_errors(db)) >= 2 and _attempt_errors(db))
        assert errors and all("SSRF guard" in e for e in errors), errors
        assert capture.received == []  # both attempts were refused before a byte was sent
        stats = client.get(f"{provider.url}/stats", headers=auth(KEY)).json()
        assert stats["dispatcher"].get("delivered", 0) == 0


def test_an_allow_listed_name_is_delivered_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the same name, allow-listed, reaches the endpoint (the guard is not refusing everything)."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
        return real_getaddrinfo("127.0.0.1" if name == "allowed.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings = ProviderSettings(
        db_path=str(tmp_path / "p.db"), api_keys=(KEY,), rate_limit_per_s=0, allowed_callback_hosts=("allowed.test",)
    )
    with CaptureServer() as capture, ServerThread(create_app(settings), loop="asyncio") as provider, httpx.Client(timeout=15) as client:
        r = client.post(f"{provider.url}/subscriptions", json={"url": f"http://allowed.test:{capture.port}/hook"}, headers=auth(KEY))
        assert r.status_code == 201
        client.post(f"{provider.url}/events", json={"type": "t", "payload": {}}, headers=auth(KEY))
        assert wait_for(lambda: capture.received)
