"""Issue 16, items 8 and 9: ``labkit serve`` takes secrets from files and the environment, and a burst option.

Each test starts a real ``labkit serve`` process on loopback and stops it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labkit.wire.signing import Signer, new_secret

# Real servers started for tens of seconds in all: the full suite runs these, the fast subset does not.
pytestmark = pytest.mark.slow

BODY = b'{"type":"order.updated","timestamp":"2025-01-01T00:00:00Z","data":{"id":1,"type":"order.updated","created_ns":1,"payload":{}}}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``labkit serve ARGS --port P``, up (``/healthz`` answers) for the block, stopped after it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "serve", *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"labkit serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("labkit serve did not come up")
            time.sleep(0.1)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmdline(proc: subprocess.Popen[bytes]) -> str:
    return Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def post_signed(url: str, secret: str, msg_id: str = "msg_1") -> int:
    headers = Signer([secret]).headers(msg_id, BODY)
    return httpx.post(f"{url}/webhook", content=BODY, headers=headers, timeout=5).status_code


def one_line_exit_2(args: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "serve", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_receiver_secret_from_a_file_stays_out_of_the_command_line(tmp_path: Path) -> None:
    secret, old = new_secret(), new_secret()
    path = tmp_path / "secrets"
    path.write_text(f"{secret}\n\n{old}\n")
    path.chmod(0o600)
    with serving("receiver", "--secret-file", str(path)) as (proc, url):
        assert secret not in cmdline(proc) and old not in cmdline(proc)
        assert post_signed(url, secret, "msg_1") == 204
        assert post_signed(url, old, "msg_2") == 204  # every line is a secret (a rotation)
        assert post_signed(url, new_secret(), "msg_3") == 401


def test_receiver_secret_from_the_environment(tmp_path: Path) -> None:
    secret = new_secret()
    with serving("receiver", env={"LABKIT_WEBHOOK_SECRET": secret}) as (proc, url):
        assert secret not in cmdline(proc)
        assert post_signed(url, secret) == 204


def test_provider_api_keys_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("file-key-1\nfile-key-2\n")
    path.chmod(0o600)
    with serving("provider", "--db", str(tmp_path / "p.db"), "--api-key-file", str(path)) as (proc, url):
        assert "file-key-1" not in cmdline(proc)
        for key, status in (("file-key-1", 200), ("file-key-2", 200), ("lab-key", 401)):
            assert httpx.get(f"{url}/events", headers={"authorization": f"Bearer {key}"}, timeout=5).status_code == status
    with serving("provider", "--db", str(tmp_path / "q.db"), env={"LABKIT_API_KEY": "env-key-1"}) as (proc, url):
        assert httpx.get(f"{url}/events", headers={"authorization": "Bearer env-key-1"}, timeout=5).status_code == 200
        assert httpx.get(f"{url}/events", headers={"authorization": "Bearer lab-key"}, timeout=5).status_code == 401


@pytest.mark.parametrize(
    "args, names",
    [
        (["receiver"], "LABKIT_WEBHOOK_SECRET"),
        (["receiver", "--secret-file", "/nonexistent/secrets"], "--secret-file"),
        (["receiver", "--secret-file", "/dev/zero"], "regular file"),
        (["provider", "--api-key-file", "/nonexistent/keys"], "--api-key-file"),
        (["provider", "--rate-limit-burst", "0"], "rate_limit_burst"),
    ],
)
def test_missing_or_bad_secret_sources_are_one_line(args: list[str], names: str) -> None:
    assert names in one_line_exit_2(args, env={"LABKIT_WEBHOOK_SECRET": ""})


def test_help_says_command_line_secrets_are_visible() -> None:
    for role, option in (("receiver", "--secret-file"), ("provider", "--api-key-file")):
        out = subprocess.run([sys.executable, "-m", "labkit", "serve", role, "--help"], capture_output=True, text=True, timeout=60).stdout
        assert option in out and "visible to every local user" in " ".join(out.split())


def _statuses(url: str, n: int) -> list[int]:
    with httpx.Client(headers={"authorization": "Bearer lab-key"}, timeout=5) as c:
        return [c.get(f"{url}/events").status_code for _ in range(n)]


def test_rate_limit_burst_defaults_to_one_second_of_the_rate(tmp_path: Path) -> None:
    with serving("provider", "--db", str(tmp_path / "p.db"), "--rate-limit", "5") as (_, url):
        statuses = _statuses(url, 12)
    assert 429 in statuses  # a burst of 400 let all of these through
    assert statuses[:5] == [200] * 5


def test_rate_limit_burst_option(tmp_path: Path) -> None:
    with serving("provider", "--db", str(tmp_path / "p.db"), "--rate-limit", "0.5", "--rate-limit-burst", "2") as (_, url):
        statuses = _statuses(url, 4)
    assert statuses[:2] == [200, 200] and statuses[2:] == [429, 429]


def test_the_lab_writes_server_settings_readable_by_the_owner_only(tmp_path: Path) -> None:
    from labkit.servers.procs import ProcessGroup

    secret = new_secret()
    with ProcessGroup(tmp_path) as group:
        child = group.start_server("receiver", "receiver", {"secrets": [secret], "db_path": str(tmp_path / "r.db")})
        assert secret not in cmdline(child.popen)  # type: ignore[arg-type]
        assert (tmp_path / "receiver.settings.json").stat().st_mode & 0o777 == 0o600
        assert post_signed(child.url, secret) == 204


# -- issue 24, items 9 and 10: a bad --db, a secrets file others can read ----------------------------


def test_a_db_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("x" * 4096)
    for db, says in ((tmp_path, "is a folder"), (tmp_path / "missing" / "p.db", "cannot open"), (not_sqlite, "cannot open")):
        assert says in one_line_exit_2(["provider", "--db", str(db), "--port", "0"])
    secret = tmp_path / "secret"
    secret.write_text("whsec_" + "A" * 43 + "=\n")
    secret.chmod(0o600)
    assert "is a folder" in one_line_exit_2(["receiver", "--secret-file", str(secret), "--db", str(tmp_path), "--port", "0"])


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o606])
def test_a_secrets_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys"
    path.write_text("file-key-1\n")
    path.chmod(mode)
    line = one_line_exit_2(["provider", "--api-key-file", str(path), "--db", str(tmp_path / "p.db")])
    assert "chmod 600" in line and f"{mode:04o}" in line
    assert not (tmp_path / "p.db").exists()
