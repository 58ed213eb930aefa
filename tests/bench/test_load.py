"""The load tool: wrk's output parsed, its Lua scripts written, requests rendered, the fallback client."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from labkit.bench.load import (
    MARKER,
    HttpRequest,
    LoadResult,
    lua_string,
    parse_wrk,
    raw_load,
    write_wrk_script,
)
from labkit.errors import RunError
from labkit.servers.bare import create_app
from tests.helpers.loopback import ServerThread

WRK_TEXT = """Running 1s test @ http://127.0.0.1:45947/r
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   203.41us  126.20us   3.15ms   95.56%
    Req/Sec    20.23k   612.23    20.92k    63.64%
  Latency Distribution
     50%  152.00us
     75%  270.00us
     90%  300.00us
     99%  459.00us
  22109 requests in 1.10s, 1.52MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 17
Requests/sec:  20108.18
Transfer/sec:      1.38MB
"""


def test_parse_wrk_text_report() -> None:
    r = parse_wrk(WRK_TEXT)
    assert r.tool == "wrk"
    assert r.requests == 22109
    assert r.rps == pytest.approx(20108.18, rel=1e-6)  # from Requests/sec, not the rounded 1.10 s
    assert r.errors_status == 17
    assert r.errors_socket == 5
    assert r.latency_us == pytest.approx({"mean": 203.41, "max": 3150.0, "p50": 152.0, "p90": 300.0, "p99": 459.0})
    assert r.ok_rps == pytest.approx((22109 - 22) / r.duration_s)


def test_parse_wrk_text_units_and_no_errors() -> None:
    text = """  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.50ms    2.00ms   1.02s    99.00%
  Latency Distribution
     50%    1.20ms
     90%    2.00ms
     99%   12.30ms
  300 requests in 2.00s, 10.00KB read
"""
    r = parse_wrk(text)
    assert r.requests == 300
    assert r.duration_s == pytest.approx(2.0)
    assert r.errors_status == r.errors_socket == 0
    assert r.latency_us["mean"] == pytest.approx(1500.0)
    assert r.latency_us["max"] == pytest.approx(1_020_000.0)
    assert r.latency_us["p99"] == pytest.approx(12300.0)


def test_parse_wrk_prefers_the_script_line() -> None:
    line = (
        MARKER + '{"requests": 1000, "duration_us": 2000000, "bytes": 5, "errors_connect": 1, "errors_read": 0, '
        '"errors_write": 0, "errors_status": 4, "errors_timeout": 2, "mean_us": 900.5, "max_us": 9000, '
        '"p50_us": 800, "p90_us": 1500, "p99_us": 4000, "wrapped": 0}'
    )
    r = parse_wrk(WRK_TEXT + line + "\n")
    assert (r.requests, r.duration_s, r.errors_status, r.errors_socket) == (1000, 2.0, 4, 3)
    assert r.rps == 500.0
    assert r.latency_us == {"mean": 900.5, "p50": 800.0, "p90": 1500.0, "p99": 4000.0, "max": 9000.0}
    assert r.to_dict()["ok_rps"] == pytest.approx(993 / 2.0)


def test_parse_wrk_refuses_what_is_not_a_report() -> None:
    with pytest.raises(RunError, match="cannot read wrk"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_lua_string_escapes_every_unusual_byte() -> None:
    assert lua_string('a"b\\c') == '"a\\034b\\092c"'
    assert lua_string(b"x\r\n\x00\xff") == '"x\\013\\010\\000\\255"'


def test_http_request_renders_host_and_length() -> None:
    raw = HttpRequest("POST", "/w", (("a", "1"), ("Content-Length", "999")), b"{}").raw("127.0.0.1:9")
    assert raw == b"POST /w HTTP/1.1\r\nHost: 127.0.0.1:9\r\na: 1\r\nContent-Length: 2\r\n\r\n{}"
    assert HttpRequest("GET", "/e").raw("h:1") == b"GET /e HTTP/1.1\r\nHost: h:1\r\n\r\n"


def test_wrk_scripts(tmp_path: Path) -> None:
    one = write_wrk_script(tmp_path, "one", [HttpRequest("POST", "/w", (("k", "v"),), b'{"a":1}')], "h:1")
    text = one.read_text()
    assert 'wrk.method = "POST"' in text and 'wrk.headers["k"] = "v"' in text and "function done" in text
    assert "function request" not in text  # a single request keeps wrk's static fast path
    many = [HttpRequest("POST", "/w", (("id", str(i)),), b"x" * i) for i in range(3)]
    script = write_wrk_script(tmp_path, "many", many, "h:1")
    assert "function request" in script.read_text()
    data = (tmp_path / "many.requests").read_bytes()
    pos, got = 0, []
    while pos < len(data):  # the format the Lua reader parses: "<length>\n<bytes>"
        nl = data.index(b"\n", pos)
        n = int(data[pos:nl])
        got.append(data[nl + 1 : nl + 1 + n])
        pos = nl + 1 + n
    assert got == [r.raw("h:1") for r in many]


def _server() -> ServerThread:
    """The bench's bare server app (one 200 route, 404 elsewhere) on loopback."""
    app = create_app({"responses": {"/ok": {"status": 200, "headers": [["content-type", "application/json"]], "body_b64": "e30="}}})
    return ServerThread(app, lifespan="off")


def test_raw_load_fallback_counts_and_times() -> None:
    with _server() as server:
        port = server.port
        reqs = [HttpRequest("GET", "/ok"), HttpRequest("GET", "/missing"), HttpRequest("POST", "/webhook", (), b"{}")]
        r: LoadResult = asyncio.run(raw_load("127.0.0.1", port, reqs, connections=2, duration_s=0.5))
    assert r.tool == "python"
    assert r.requests > 30
    assert 0 < r.errors_status < r.requests  # the 404s, about a third
    assert r.errors_socket == 0
    assert r.latency_us["p50"] > 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_real_wrk_output_is_parsed(tmp_path: Path) -> None:
    with _server() as server:
        port = server.port
        script = write_wrk_script(tmp_path, "s", [HttpRequest("GET", "/ok")], f"127.0.0.1:{port}")
        out = subprocess.run(
            ["wrk", "-t1", "-c2", "-d1s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/ok"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    r = parse_wrk(out.stdout)
    text_only = parse_wrk(out.stdout.replace(MARKER, "IGNORED "))
    assert r.requests > 0 and r.errors_status == 0
    assert text_only.requests == r.requests
