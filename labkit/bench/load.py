"""Closed-loop HTTP load for the benchmarks: ``wrk`` when installed, else a small raw client.

Both sides of every ratio are driven by the same tool with the same
connections and the same requests, so the tool's own cost cancels out.

``wrk`` gets a generated Lua script. One request is set as ``wrk.method``,
``wrk.headers`` and ``wrk.body`` (wrk's static fast path); several (pre-signed
webhooks with distinct ids) are written to a data file the script reads at
start and cycles through. Either way the script's ``done`` prints one line::

    LABKIT_WRK {"requests": .., "duration_us": .., "errors_status": .., ...}

which ``parse_wrk`` prefers; wrk's own text report (``Requests/sec:``,
``Non-2xx or 3xx responses:``, ``Socket errors:``) is parsed when the line
is missing. Without wrk, ``raw_load`` keeps N keep-alive connections of
labkit's own HTTP/1.1 client core (labkit.wire.httpclient) busy from this
process with prebuilt requests.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import RunError, WireError
from labkit.wire.httpclient import HttpConnection, Origin, connect, parse_url, render_request
from labkit.wire.metering import WireCounter, new_histogram, record_us

MARKER = "LABKIT_WRK "
WRK_GRACE_S = 15.0  # beyond its duration, how long wrk may take before it is killed


@dataclass(frozen=True)
class HttpRequest:
    """One request to replay; ``raw`` renders it as HTTP/1.1 bytes for a ``host:port``."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def raw(self, hostport: str) -> bytes:
        headers = [(k, v) for k, v in self.headers if k.lower() not in ("host", "content-length")]
        body = self.body if self.body or self.method in ("POST", "PUT", "PATCH") else None
        return render_request(self.method, self.path.encode("latin-1"), hostport.encode("latin-1"), headers, body)


@dataclass
class LoadResult:
    """What one closed-loop run did; latencies in microseconds."""

    tool: str
    requests: int
    duration_s: float
    errors_status: int = 0  # responses with status >= 400 (wrk's rule)
    errors_socket: int = 0  # connect, read, write errors and timeouts
    latency_us: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok_rps(self) -> float:
        """Requests per second that got an answer below 400."""
        ok = max(self.requests - self.errors_status - self.errors_socket, 0)
        return ok / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": self.rps, "ok_rps": self.ok_rps}


# -- wrk ------------------------------------------------------------------------------


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    path = wrk_path()
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def lua_string(value: str | bytes) -> str:
    """A Lua string literal holding exactly ``value``'s bytes (decimal escapes for anything unusual)."""
    data = value.encode("latin-1") if isinstance(value, str) else value
    out = []
    for b in data:
        ch = chr(b)
        if ch in '"\\' or b < 32 or b > 126:
            out.append(f"\\{b:03d}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LABKIT_WRK {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "mean_us": %.1f, "max_us": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99), wrapped or 0))
end
"""

_CYCLE = r"""
local reqs = {}
local n = 0
local i = 0
wrapped = 0

function init(args)
  local f = assert(io.open(%s, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    n = n + 1
    reqs[n] = string.sub(data, nl + 1, nl + len)
    pos = nl + 1 + len
  end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end
"""


def write_wrk_script(directory: Path, name: str, requests: list[HttpRequest], hostport: str) -> Path:
    """A Lua script for ``requests`` (one: wrk's static request; several: cycled from a data file)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"{name}.lua"
    if len(requests) == 1:
        r = requests[0]
        lines = [f"wrk.method = {lua_string(r.method)}"]
        lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in r.headers]
        if r.body:
            lines.append(f"wrk.body = {lua_string(r.body)}")
        script.write_text("\n".join(lines) + "\n" + _DONE)
        return script
    data = directory / f"{name}.requests"
    with open(data, "wb") as f:
        for r in requests:
            raw = r.raw(hostport)
            f.write(b"%d\n" % len(raw))
            f.write(raw)
    script.write_text(_CYCLE % lua_string(str(data)) + _DONE)
    return script


def run_wrk(url: str, script: Path, *, connections: int, duration_s: float, threads: int = 1, timeout_s: float = 10.0) -> LoadResult:
    """Run wrk once; the output is parsed by ``parse_wrk``."""
    path = wrk_path()
    if path is None:
        raise RunError("wrk is not installed")
    seconds = max(1, round(duration_s))
    cmd = [
        path,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + WRK_GRACE_S, check=False)
    except subprocess.TimeoutExpired:
        raise RunError(f"wrk did not finish within {seconds + WRK_GRACE_S:.0f} s") from None
    if proc.returncode != 0:
        raise RunError(f"wrk failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[:300]}")
    return parse_wrk(proc.stdout)


_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str, units: dict[str, float]) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * units[m.group(2)]


def parse_wrk(output: str) -> LoadResult:
    """A ``LoadResult`` from wrk's stdout: the script's ``LABKIT_WRK`` line, else wrk's text report."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            d = json.loads(line[len(MARKER) :])
            return LoadResult(
                tool="wrk",
                requests=int(d["requests"]),
                duration_s=d["duration_us"] / 1e6,
                errors_status=int(d["errors_status"]),
                errors_socket=int(d["errors_connect"] + d["errors_read"] + d["errors_write"] + d["errors_timeout"]),
                latency_us={
                    "mean": float(d["mean_us"]),
                    "p50": float(d["p50_us"]),
                    "p90": float(d["p90_us"]),
                    "p99": float(d["p99_us"]),
                    "max": float(d["max_us"]),
                },
            )
    m = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    if not m:
        raise RunError(f"cannot read wrk's output: {output.strip()[:200]!r}")
    requests = int(m.group(1))
    duration_s = _duration(m.group(2), _UNITS_S)  # rounded to 10 ms in the report
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.MULTILINE)
    if rps and float(rps.group(1)) > 0:
        duration_s = requests / float(rps.group(1))
    status = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    latency: dict[str, float] = {}
    lat = re.search(r"^\s*Latency\s+(\S+)\s+\S+\s+(\S+)", output, re.MULTILINE)
    if lat:
        latency["mean"] = _duration(lat.group(1), _UNITS_US)
        latency["max"] = _duration(lat.group(2), _UNITS_US)
    for pct, value in re.findall(r"^\s*(50|90|99)(?:\.0+)?%\s+(\S+)", output, re.MULTILINE):
        latency[f"p{pct}"] = _duration(value, _UNITS_US)
    return LoadResult(
        tool="wrk",
        requests=requests,
        duration_s=duration_s,
        errors_status=int(status.group(1)) if status else 0,
        errors_socket=sum(int(g) for g in sock.groups()) if sock else 0,
        latency_us=latency,
    )


# -- the fallback: keep-alive connections of labkit's own client core --------------------------


async def raw_load(
    host: str, port: int, requests: list[HttpRequest], *, connections: int, duration_s: float, timeout_s: float = 10.0
) -> LoadResult:
    """Keep ``connections`` connections busy for ``duration_s`` (the fallback when wrk is missing)."""
    loop = asyncio.get_running_loop()
    origin = Origin("http", host, port)
    wire = WireCounter()
    raws = [r.raw(f"{host}:{port}") for r in requests]
    hist = new_histogram()
    counts = {"requests": 0, "status": 0, "socket": 0}
    deadline = loop.time() + duration_s
    nxt = 0

    async def worker() -> None:
        nonlocal nxt
        conn: HttpConnection | None = None
        while loop.time() < deadline:
            if conn is None or conn.closed:
                try:
                    conn = await connect(origin, wire, deadline=loop.time() + timeout_s)
                except WireError:
                    counts["socket"] += 1
                    await asyncio.sleep(0.01)
                    continue
            raw = raws[nxt % len(raws)]
            nxt += 1
            start = time.perf_counter()
            try:
                response = await conn.exchange(raw, loop.time() + timeout_s)
            except WireError:
                counts["socket"] += 1
                conn = None
                continue
            record_us(hist, (time.perf_counter() - start) * 1e6)
            counts["requests"] += 1
            if response.status_code >= 400:
                counts["status"] += 1
        if conn is not None:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latency = {}
    if counts["requests"]:
        latency = {
            "mean": hist.get_mean_value(),
            "p50": float(hist.get_value_at_percentile(50)),
            "p90": float(hist.get_value_at_percentile(90)),
            "p99": float(hist.get_value_at_percentile(99)),
            "max": float(hist.get_max_value()),
        }
    return LoadResult("python", counts["requests"], elapsed, counts["status"], counts["socket"], latency)


class LoadTool:
    """Runs closed-loop load with wrk (or the fallback), scripts kept in ``work_dir``."""

    def __init__(self, work_dir: Path, *, use_wrk: bool | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.use_wrk = (wrk_path() is not None) if use_wrk is None else use_wrk
        self.name = f"wrk {wrk_version()}" if self.use_wrk else "python raw client (wrk not installed)"
        self._n = 0

    def run(self, base_url: str, requests: list[HttpRequest], *, connections: int, duration_s: float) -> LoadResult:
        target = parse_url(base_url)
        hostport = target.host.decode("ascii")
        if not self.use_wrk:
            origin = target.origin
            return asyncio.run(raw_load(origin.host, origin.port, requests, connections=connections, duration_s=duration_s))
        self._n += 1
        script = write_wrk_script(self.work_dir, f"load{self._n}", requests, hostport)
        url = base_url.rstrip("/") + requests[0].path
        return run_wrk(url, script, connections=connections, duration_s=duration_s)
