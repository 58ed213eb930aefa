"""Locust load shapes: a step test that stops itself at the SLO, and a ramp.

Importing this module imports Locust (and so gevent's monkey-patching): only
locustfiles import it. The two shape locustfiles in
``labkit/capacity/locustfiles/`` each expose one shape, so a scenario runs
with a shape by naming both files::

    locust -f scenarios/polling.py,labkit/capacity/locustfiles/step_shape.py \\
        --headless -u 200 -t 60s --step-users 40 --step-seconds 12 --slo-p99-ms 100 ...

The shapes read Locust's common options (``use_common_options``): ``-u`` is
the most users, ``-t`` the time limit, ``-r`` the spawn rate (default: a
whole step in about a second). The step logic lives in ``stepping`` and is
tested without Locust.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from locust import LoadTestShape
from locust.stats import (
    RequestStats,
    calculate_response_time_percentile,
    diff_response_time_dicts,
)

from labkit.capacity.latency import MergedLatency
from labkit.capacity.limits import LimitSearch
from labkit.capacity.recording import attached
from labkit.capacity.stepping import (
    Generator,
    RampPlan,
    SearchController,
    StepController,
    StepPlan,
    StepStats,
    default_settle,
    ramp_users,
)

log = logging.getLogger("labkit.capacity")

AGGREGATED = "Aggregated"


def add_step_arguments(parser: Any) -> None:
    """The step shape's options, on Locust's command line and in its web UI."""
    parser.add_argument("--step-users", type=int, default=0, help="users added per step (0: a fifth of -u)")
    parser.add_argument("--step-seconds", type=float, default=12.0, help="seconds each step is held")
    parser.add_argument("--settle-seconds", type=float, default=-1.0, help="start of a step left out of its judgement (-1: auto)")
    parser.add_argument("--slo-p99-ms", type=float, default=100.0, help="p99 latency the SLO allows")
    parser.add_argument("--slo-failure-ratio", type=float, default=0.01, help="failure ratio the SLO allows")
    parser.add_argument(
        "--slo-metric", default=AGGREGATED, help="stats entry the p99 applies to: 'Aggregated' or 'TYPE NAME', e.g. 'LAG delivery'"
    )
    parser.add_argument("--search", action="store_true", help="find the limit: climb by --search-factor, then bisect (-u is the cap)")
    parser.add_argument("--search-start", type=int, default=0, help="the first users of a search (0: --step-users)")
    parser.add_argument("--search-factor", type=float, default=2.0, help="a search's climb: users times this per step")
    parser.add_argument("--search-tolerance", type=float, default=0.10, help="bisect until held and breached are this close")
    parser.add_argument(
        "--max-workers", type=int, default=0, help="a search adds Locust workers up to this many when Locust runs out of CPU"
    )
    parser.add_argument("--workers-file", default="", help="where a search asks its runner for another worker (the count wanted)")
    parser.add_argument("--search-out", default="", help="where a search writes its outcome (JSON)")
    parser.add_argument("--shape-time-limit", type=float, default=0.0, help="the shape stops here (0: at -t)")


def add_ramp_arguments(parser: Any) -> None:
    parser.add_argument("--ramp-seconds", type=float, default=0.0, help="seconds to reach -u users (0: the whole -t)")


def _opt(options: Any, name: str, default: Any) -> Any:
    value = getattr(options, name, None) if options is not None else None
    return default if value is None else value


def _auto_settle(options: Any, step_seconds: float) -> float:
    """A step's users start within one interval of the scenario (their phases are spread over it)."""
    interval = _opt(options, "poll_interval", None) or _opt(options, "send_interval", None) or 0.0
    return max(default_settle(step_seconds), min(float(interval), step_seconds / 2))


class LocustStatsProbe:
    """Reads Locust's running stats: p99 of one entry, requests and failures of all."""

    def __init__(self, stats: RequestStats, metric: str = AGGREGATED) -> None:
        self.stats = stats
        self.metric = metric

    def _entry(self) -> Any:
        if self.metric == AGGREGATED:
            return self.stats.total
        method, _, name = self.metric.partition(" ")
        return self.stats.get(name, method)

    def snapshot(self) -> tuple[dict[int, int], int, int, int]:
        entry, total = self._entry(), self.stats.total
        return (dict(entry.response_times), entry.num_requests - entry.num_none_requests, total.num_requests, total.num_failures)

    def since(self, snap: tuple[dict[int, int], int, int, int]) -> StepStats:
        times0, n0, req0, fail0 = snap
        entry, total = self._entry(), self.stats.total
        n = entry.num_requests - entry.num_none_requests - n0
        p99 = None
        if n > 0:
            p99 = float(calculate_response_time_percentile(diff_response_time_dicts(entry.response_times, times0), n, 0.99))
        return StepStats(total.num_requests - req0, total.num_failures - fail0, p99)


class ExactStatsProbe:
    """The step's requests, failures and p99 from the exact, merged histograms; Locust's when they hold none yet.

    The verdict of a run is judged on these histograms (``labkit.capacity.analysis``):
    judging the running step on them too makes the shape stop where the verdict breaks.
    """

    def __init__(self, merged: MergedLatency, fallback: LocustStatsProbe) -> None:
        self.merged = merged
        self.fallback = fallback

    def snapshot(self) -> tuple[float, tuple[dict[int, int], int, int, int]]:
        return time.time(), self.fallback.snapshot()

    def since(self, snap: tuple[float, tuple[dict[int, int], int, int, int]]) -> StepStats:
        start, locust_snap = snap
        requests, failures, p99 = self.merged.window(math.ceil(start), time.time())
        if requests == 0 or p99 is None:
            return self.fallback.since(locust_snap)
        return StepStats(requests, failures, p99)


def step_probe(runner: Any, metric: str) -> LocustStatsProbe | ExactStatsProbe:
    """Exact when the scenario records request latency and the SLO is on every request; Locust's otherwise."""
    locust_probe = LocustStatsProbe(runner.stats, metric)
    recorder = attached()
    if recorder is None or metric != AGGREGATED:
        return locust_probe
    return ExactStatsProbe(recorder.merged, locust_probe)


def generator_state(runner: Any, max_workers: int) -> Generator:
    """The busiest Locust process's CPU (the workers' as they report it, or this process's) and whether a worker can join."""
    clients = getattr(runner, "clients", None)
    if clients is not None:  # a master: its workers report their CPU in each heartbeat
        cpus = [float(c.cpu_usage) for c in clients.values()]
        workers = len(cpus)
        return Generator(max(cpus, default=None), workers, workers < max_workers)
    return Generator(float(getattr(runner, "current_cpu_usage", 0.0)), 0, False)


def _ask_for_worker(path: str, runner: Any) -> None:
    """Ask the runner (``labkit.capacity.run``) for one more worker than the master has now."""
    if path:
        wanted = len(getattr(runner, "clients", {}) or {}) + 1
        with open(path, "w") as fh:
            fh.write(str(wanted))
        log.info("search: the load generator ran out of CPU: asking for worker %d", wanted)


def write_search(path: str, controller: SearchController) -> None:
    """The search's outcome beside Locust's files, for the analysis (``labkit.capacity.analysis.find_limit``)."""
    if path:
        doc = {**controller.search.outcome().to_json(), "workers_added": controller.workers_added}
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=2)


class StepShape(LoadTestShape):
    """Adds users step by step until a step breaches the SLO, then stops; with --search, finds the limit instead."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.controller: StepController | SearchController | None = None

    def plan(self) -> StepPlan:
        o = self.runner.environment.parsed_options if self.runner is not None else None
        max_users = int(_opt(o, "num_users", 0) or 0)
        if max_users < 1:
            raise ValueError("the step shape needs -u/--users: the most users to try")
        step_users = int(_opt(o, "step_users", 0)) or max(1, -(-max_users // 5))
        step_seconds = float(_opt(o, "step_seconds", 12.0))
        settle = float(_opt(o, "settle_seconds", -1.0))
        run_time = float(_opt(o, "shape_time_limit", 0.0)) or _opt(o, "run_time", None)
        spawn_rate = _opt(o, "spawn_rate", None)
        return StepPlan(
            max_users=max_users,
            step_users=step_users,
            step_seconds=step_seconds,
            slo_p99_ms=float(_opt(o, "slo_p99_ms", 100.0)),
            max_failure_ratio=float(_opt(o, "slo_failure_ratio", 0.01)),
            settle_seconds=_auto_settle(o, step_seconds) if settle < 0 else settle,
            # -r defaults to 1 in headless runs; a step should not take step_users seconds to spawn.
            spawn_rate=float(spawn_rate) if spawn_rate and float(spawn_rate) > 1 else None,
            time_limit_s=float(run_time) if run_time else None,
        )

    def search_controller(self, plan: StepPlan, metric: str) -> SearchController:
        assert self.runner is not None
        o, runner = self.runner.environment.parsed_options, self.runner
        start = int(_opt(o, "search_start", 0)) or plan.step_users
        search = LimitSearch(
            start=min(start, plan.max_users),
            maximum=plan.max_users,
            factor=float(_opt(o, "search_factor", 2.0)),
            tolerance=float(_opt(o, "search_tolerance", 0.10)),
            max_probes=10_000,  # bounded by the time limit
        )
        max_workers = int(_opt(o, "max_workers", 0))
        return SearchController(
            plan,
            step_probe(runner, metric),
            search,
            generator=lambda: generator_state(runner, max_workers),
            add_worker=lambda: _ask_for_worker(str(_opt(o, "workers_file", "")), runner),
        )

    def tick(self) -> tuple[int, float] | None:
        if self.controller is None:
            assert self.runner is not None
            o = self.runner.environment.parsed_options
            metric = str(_opt(o, "slo_metric", AGGREGATED))
            plan = self.plan()
            if _opt(o, "search", False):
                self.controller = self.search_controller(plan, metric)
            else:
                self.controller = StepController(plan, step_probe(self.runner, metric))
            self.reset_time()
            log.info("step shape: %s", self.controller.plan)
        judged = len(self.controller.outcomes)
        result = self.controller.tick(self.get_run_time())
        for outcome in self.controller.outcomes[judged:]:
            log.info(
                "step %d: %d users, %d requests, p99 %s ms, failures %.2f%%: %s",
                outcome.index + 1,
                outcome.users,
                outcome.stats.requests,
                outcome.stats.p99_ms,
                100 * outcome.stats.failure_ratio,
                "SLO met" if outcome.met else "SLO breached",
            )
        if result is None:
            log.info("step shape stops: %s", self.controller.stop_reason)
            if isinstance(self.controller, SearchController):
                write_search(str(_opt(self.runner.environment.parsed_options if self.runner else None, "search_out", "")), self.controller)
        return result


class RampShape(LoadTestShape):
    """A linear ramp to -u users over --ramp-seconds, held until -t."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        o = self.runner.environment.parsed_options if self.runner is not None else None
        run_time = _opt(o, "run_time", None)
        ramp = float(_opt(o, "ramp_seconds", 0.0)) or float(run_time or 60)
        plan = RampPlan(
            max_users=max(1, int(_opt(o, "num_users", 1) or 1)), ramp_seconds=ramp, time_limit_s=float(run_time) if run_time else None
        )
        return ramp_users(plan, self.get_run_time())
