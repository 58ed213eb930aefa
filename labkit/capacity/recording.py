"""Locust wiring for exact request latency: record on every node, merge on the master, write files.

``RequestLatency().attach(events)`` in a locustfile makes every process that
runs users (a local runner or a worker) record each request (Locust's
``request`` event; the ``LAG`` pseudo-requests are left to ``DeliveryLag``)
in a ``LatencyRecorder``, corrected at the scenario's interval
(``--poll-interval`` or ``--send-interval``). Users report late starts and
dropped slots through ``late`` (their ``Timetable`` calls it).

A worker sends its delta to the master with every stats report
(``report_to_master``). When the test stops, the master asks every worker for
its last delta (``labkit_latency_flush``) and waits, a bounded time, until
each has answered: a headless master quits a few hundred milliseconds after
its shape stops, sooner than a worker's next report, so without this the end
of every run would be lost. A worker stops recording when it answers, so what
it logs as recorded is exactly what the master merged. The master (or local
runner) writes the files (``labkit.capacity.latency``) when Locust quits, to
``--latency-out PREFIX`` or beside the CSV files.

Importing this module imports Locust: only locustfiles import it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from labkit.capacity.latency import LatencyRecorder, MergedLatency, latency_paths

log = logging.getLogger("labkit.capacity")

MESSAGE = "labkit_latency"
FLUSH = "labkit_latency_flush"
FLUSH_WAIT_S = 15.0
REPORT_KEY = "labkit_latency"
LOCAL_FLUSH_EVERY_S = 1.0  # the step shape judges on the merged histograms: keep them current
SKIP_TYPES = frozenset({"LAG"})


def add_latency_arguments(parser: Any) -> None:
    parser.add_argument(
        "--latency-out",
        default="",
        help="prefix of the exact latency files (<prefix>_latency.json, _corrected.hlog, _raw.hlog); default: the --csv prefix",
    )


def scenario_interval(environment: Environment) -> float:
    """The scenario's intended interval between one user's requests (0: unknown, no correction)."""
    o = environment.parsed_options
    for name in ("poll_interval", "send_interval"):
        value = getattr(o, name, None) if o is not None else None
        if value:
            return float(value)
    return 0.0


def refresh_loop_clock(**_: Any) -> None:
    """Bring gevent's cached loop time up to date before Locust arms its ``-t`` timer.

    The event loop caches "now" when it last ran. On a busy machine the imports
    between the hub's creation and the run's start can take longer than a
    short ``-t``; a timer armed against the stale clock then fires at once and
    the run ends before any user has sent a request.
    """
    gevent.get_hub().loop.update_now()


_attached: list[RequestLatency] = []


def attached() -> RequestLatency | None:
    """The recorder a locustfile of this process attached (the step shape judges on it), if any."""
    return _attached[-1] if _attached else None


class RequestLatency:
    """Exact per-second histograms of every request, on every node, merged on the master."""

    def __init__(self) -> None:
        self.recorder: LatencyRecorder | None = None
        self.merged = MergedLatency()
        self._flusher: Any = None
        self._final: set[str] = set()
        self.totals: dict[str, int] = {}

    def attach(self, events: Any) -> None:
        _attached.append(self)
        events.init.add_listener(refresh_loop_clock)
        events.init.add_listener(self._on_init)
        events.init_command_line_parser.add_listener(add_latency_arguments)
        events.test_start.add_listener(self._on_test_start)
        events.request.add_listener(self._on_request)
        events.test_stopping.add_listener(self._on_test_stopping)
        events.test_stop.add_listener(self._on_test_stop)
        events.report_to_master.add_listener(self._on_report_to_master)
        events.worker_report.add_listener(self._on_worker_report)
        events.quitting.add_listener(self._on_quitting)

    # called by the users' timetables
    def late(self, dropped: int = 0) -> None:
        if self.recorder is not None:
            self.recorder.late(time.time(), dropped)

    # -- listeners ------------------------------------------------------------------------

    def _on_init(self, environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, MasterRunner):
            environment.runner.register_message(MESSAGE, self._on_message)
        elif isinstance(environment.runner, WorkerRunner):
            environment.runner.register_message(FLUSH, self._on_flush)

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, MasterRunner):
            return
        self.recorder = LatencyRecorder(scenario_interval(environment))
        self.totals = self.recorder.totals
        self._final.clear()
        if not isinstance(environment.runner, WorkerRunner):
            self._flusher = gevent.spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        """A local runner moves closed seconds out of live histograms, so memory stays flat."""
        while True:
            gevent.sleep(LOCAL_FLUSH_EVERY_S)
            self._take_local()

    def _take_local(self) -> None:
        if self.recorder is not None:
            self.merged.merge(self.recorder.take(), "local")

    def _on_request(self, request_type: str, response_time: float | None = None, exception: Any = None, **_: Any) -> None:
        if self.recorder is not None and request_type not in SKIP_TYPES and response_time is not None:
            self.recorder.record(response_time, time.time(), failed=exception is not None)

    def _on_test_stopping(self, environment: Environment, **_: Any) -> None:
        """On the master: collect every worker's last delta before Locust tells them to quit."""
        runner = environment.runner
        if not isinstance(runner, MasterRunner):
            return
        waiting = {c.id for c in runner.clients.all}
        for client_id in waiting:
            runner.send_message(FLUSH, None, client_id=client_id)
        deadline = time.monotonic() + FLUSH_WAIT_S
        while waiting - self._final and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = waiting - self._final
        if missing:
            log.warning("labkit latency: no final report from %d worker(s): %s", len(missing), ", ".join(sorted(missing)))

    def _on_flush(self, environment: Environment, msg: Any, **_: Any) -> None:
        """On a worker: send the last delta and stop recording, so the master has all this worker recorded."""
        recorder, self.recorder = self.recorder, None
        delta = recorder.take() if recorder is not None else {}
        if environment.runner is not None:
            environment.runner.send_message(MESSAGE, {**delta, "final": True})

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner) and self.recorder is not None:
            runner.send_message(MESSAGE, self.recorder.take())  # a master without the flush: before client_stopped
        elif not isinstance(runner, MasterRunner):
            if self._flusher is not None:
                self._flusher.kill(block=True)
                self._flusher = None
            self._take_local()

    def _on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        if self.recorder is not None:
            data[REPORT_KEY] = self.recorder.take()

    def _on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self.merged.merge(data.get(REPORT_KEY) or {}, client_id)

    def _on_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.merged.merge(msg.data or {}, msg.node_id)
        if (msg.data or {}).get("final"):
            self._final.add(msg.node_id)

    def _on_quitting(self, environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            if self.totals:
                t = self.totals
                log.info(
                    "labkit latency: this worker recorded %d requests (%d late, %d dropped slots)", t["requests"], t["late"], t["dropped"]
                )
            return
        self._take_local()
        o = environment.parsed_options
        prefix = str(getattr(o, "latency_out", "") or getattr(o, "csv_prefix", "") or "")
        if not prefix:
            return
        paths = self.merged.write(prefix)
        t = self.merged.totals()
        log.info(
            "labkit latency: %d requests from %d node(s) merged (%d late, %d dropped slots) into %s",
            t["requests"],
            len(self.merged.nodes),
            t["late"],
            t["dropped"],
            paths["corrected"].name,
        )


__all__ = ["RequestLatency", "add_latency_arguments", "attached", "latency_paths", "refresh_loop_clock", "scenario_interval"]
