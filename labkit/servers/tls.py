"""HTTPS for the lab: local certificates, and what a TLS handshake costs per webhook delivery.

``make_certificates`` writes a throw-away CA and a server certificate for
127.0.0.1 and localhost (``trustme``). Servers take them through
``ProcessGroup.start_server(..., tls=(cert_file, key_file))``; clients trust
``ca_file`` (``ProviderSettings.ca_file`` for the dispatcher,
``PollerSettings.ca_file`` for the poller).

Why it matters to the comparison: a poller keeps one connection open and
pays the handshake once; a webhook provider delivering to many endpoints
often opens a fresh connection per delivery (its pool rarely holds a warm
connection to each receiver) and pays a full handshake every time.
``measure_handshake_cost`` puts numbers on that: signed webhook POSTs to a
real receiver process, over HTTP and HTTPS, each on a fresh connection and
on one reused connection, timed and CPU-counted on both sides.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class LabCertificates:
    """PEM files of a local CA and of a server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    key_type: str

    @property
    def server(self) -> tuple[str, str]:
        """The ``tls=`` argument of ``ProcessGroup.start_server``."""
        return (str(self.cert_file), str(self.key_file))


def make_certificates(
    directory: str | os.PathLike[str], hosts: tuple[str, ...] = DEFAULT_HOSTS, key_type: str = "ECDSA"
) -> LabCertificates:
    """A fresh CA and a server certificate for ``hosts``, written to ``directory`` (key file 0600)."""
    import trustme

    kt = trustme.KeyType[key_type.upper()]
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=kt)
    leaf = ca.issue_cert(*hosts, key_type=kt)
    certs = LabCertificates(d / "lab-ca.pem", d / "server.pem", d / "server.key", kt.name)
    ca.cert_pem.write_to_path(str(certs.ca_file))
    leaf.private_key_pem.write_to_path(str(certs.key_file))
    os.chmod(certs.key_file, 0o600)
    with open(certs.cert_file, "wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    return certs


def _deliveries(client: httpx.Client, url: str, signer: Any, n: int, start: int) -> tuple[list[float], float]:
    """POST ``n`` signed webhooks; per-request wall seconds and the client's CPU seconds in all."""
    walls: list[float] = []
    cpu0 = time.process_time()
    for i in range(start, start + n):
        body = b'{"type":"tls.probe","timestamp":"2024-01-01T00:00:00Z","data":{"id":%d,"payload":{}}}' % i
        headers = signer.headers(f"msg_tls_{i}", body)
        headers["content-type"] = "application/json"
        t = time.perf_counter()
        r = client.post(url, content=body, headers=headers)
        walls.append(time.perf_counter() - t)
        if r.status_code >= 300:
            raise RuntimeError(f"probe webhook answered {r.status_code}: {r.text[:200]}")
    return walls, time.process_time() - cpu0


def measure_handshake_cost(*, requests: int = 200, warmup: int = 20, work_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Time signed webhook deliveries over HTTP and HTTPS, fresh and reused connections.

    Returns per mode the median and mean wall milliseconds per delivery (client
    side) and the CPU milliseconds per delivery of the client and of the
    receiver process; then the handshake's cost: HTTPS fresh minus HTTPS
    reused (what a delivery pays when the connection is not reused), and
    TCP set-up alone (HTTP fresh minus HTTP reused) for comparison.
    """
    from labkit.servers.procs import ProcessGroup
    from labkit.wire.signing import Signer, new_secret

    if requests < 1 or warmup < 0:
        raise ValueError("requests must be >= 1 and warmup >= 0")
    secret = new_secret()
    signer = Signer([secret])
    own = work_dir is None
    wd = Path(tempfile.mkdtemp(prefix="labkit-tls-")) if own else Path(work_dir)  # type: ignore[arg-type]
    certs = make_certificates(wd / "certs")
    modes: dict[str, Any] = {}
    tls_info: dict[str, Any] = {}
    try:
        with ProcessGroup(wd) as group:
            settings = {"secrets": [secret]}
            http = group.start_server("receiver-http", "receiver", settings)
            https = group.start_server("receiver-https", "receiver", settings, tls=certs.server)
            seq = 0
            for name, child, keep in (
                ("http_reused", http, True),
                ("http_fresh", http, False),
                ("https_reused", https, True),
                ("https_fresh", https, False),
            ):
                limits = httpx.Limits(max_connections=1, max_keepalive_connections=1 if keep else 0)
                verify = str(certs.ca_file) if child.scheme == "https" else True
                with httpx.Client(limits=limits, verify=verify, timeout=10.0) as client:
                    url = f"{child.url}/webhook"
                    _deliveries(client, url, signer, warmup, seq)
                    seq += warmup
                    server_cpu0 = child.cpu_s()
                    walls, client_cpu = _deliveries(client, url, signer, requests, seq)
                    seq += requests
                    server_cpu = child.cpu_s() - server_cpu0
                    if child.scheme == "https" and not tls_info:
                        r = client.get(f"{child.url}/healthz")
                        ssl_object = r.extensions["network_stream"].get_extra_info("ssl_object")
                        if ssl_object is not None:
                            tls_info = {"version": ssl_object.version(), "cipher": ssl_object.cipher()[0], "key_type": certs.key_type}
                modes[name] = {
                    "wall_ms_median": statistics.median(walls) * 1000,
                    "wall_ms_mean": statistics.fmean(walls) * 1000,
                    "client_cpu_ms": client_cpu / requests * 1000,
                    "server_cpu_ms": server_cpu / requests * 1000,
                }
    finally:
        if own:
            import shutil

            shutil.rmtree(wd, ignore_errors=True)

    def diff(a: str, b: str, key: str) -> float:
        return modes[a][key] - modes[b][key]

    return {
        "requests": requests,
        "tls": tls_info,
        "modes": modes,
        "handshake": {
            "wall_ms": diff("https_fresh", "https_reused", "wall_ms_median"),
            "client_cpu_ms": diff("https_fresh", "https_reused", "client_cpu_ms"),
            "server_cpu_ms": diff("https_fresh", "https_reused", "server_cpu_ms"),
        },
        "tcp_connect": {
            "wall_ms": diff("http_fresh", "http_reused", "wall_ms_median"),
            "client_cpu_ms": diff("http_fresh", "http_reused", "client_cpu_ms"),
            "server_cpu_ms": diff("http_fresh", "http_reused", "server_cpu_ms"),
        },
        "note": "loopback, one client process (httpx, sync) and one receiver process (uvicorn); "
        "fresh = a new TCP (+TLS) connection per delivery, reused = one kept-alive connection",
    }
