"""``Lab.alternate``: the ABBA load rounds every paired benchmark uses (no server, no load: a fake tool)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

from labkit.bench.cases import Lab, Plan, plan
from labkit.bench.load import HttpRequest, LoadResult, LoadTool
from labkit.servers.procs import Child, ProcessGroup


class FakeChild:
    """A server that only answers ``cpu_s``: 1 CPU-second per read, or NaN (psutil lost it)."""

    def __init__(self, name: str, cpu_known: bool = True) -> None:
        self.name = name
        self.url = f"http://127.0.0.1/{name}"
        self._cpu = 0.0
        self._known = cpu_known

    def cpu_s(self) -> float:
        self._cpu += 1.0
        return self._cpu if self._known else math.nan

    def alive(self) -> bool:
        return True


class FakeTool:
    """Records each segment's (url, first request path) and answers one request per segment."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def run(self, base_url: str, requests: list[HttpRequest], *, connections: int, duration_s: float) -> LoadResult:
        self.calls.append((base_url, requests[0].path))
        return LoadResult("fake", requests=len(self.calls), duration_s=1.0)


def _lab(tool: FakeTool, progress: list[tuple[str, int, int]]) -> Lab:
    return Lab(cast(ProcessGroup, None), Path("."), cast(LoadTool, tool), lambda label, done, steps: progress.append((label, done, steps)))


def test_alternate_runs_abba_with_each_reps_requests_and_counts_progress() -> None:
    tool, progress = FakeTool(), []
    a, b = FakeChild("a"), FakeChild("b", cpu_known=False)
    p: Plan = plan(quick=True)  # 3 repetitions
    asked: list[int] = []

    def requests(rep: int) -> dict[str, list[HttpRequest]]:
        asked.append(rep)
        return {key: [HttpRequest("GET", f"/{key}{rep}", ())] for key in ("a", "b")}

    seg = _lab(tool, progress).alternate(p, cast(dict[str, Child], {"a": a, "b": b}), requests, "bench: test", done=4, steps=20)

    assert asked == [0, 1, 2]  # once a repetition, shared by both sides
    assert tool.calls == [(a.url, "/a0"), (b.url, "/b0"), (b.url, "/b1"), (a.url, "/a1"), (a.url, "/a2"), (b.url, "/b2")]
    assert seg.ok_rps("a") == [1.0, 4.0, 5.0] and seg.ok_rps("b") == [2.0, 3.0, 6.0]
    assert len(seg.cpu["a"]) == len(seg.cpu["b"]) == 3  # one share a segment, even when unknown (paired by index)
    assert all(math.isnan(c) for c in seg.cpu["b"])
    assert [d for _, d, _ in progress] == [5, 6, 7, 8, 9, 10] and {(lbl, s) for lbl, _, s in progress} == {("bench: test", 20)}
    summary: dict[str, Any] = seg.series("b")
    assert summary["server_cpu_share"] is None and summary["requests"] == 11  # NaN shares do not count in the median
