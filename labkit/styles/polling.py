"""API polling (and its variants: conditional, long polling, adaptive, snapshot feed) as one delivery style.

A run starts one poller-fleet worker process holding ``pollers`` pollers
(with ``consumer_processes`` > 1, a supervisor of that many, the pollers split across them),
each following the provider's cursor feed (or, with ``snapshot``, only the
latest version). The fleet writes its counters to a stats file, and an exact
snapshot on SIGUSR1, which brackets the workload window.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labkit import model
from labkit.config import RunSettings
from labkit.errors import ServerError
from labkit.model import network as model_network
from labkit.model.calibration import Base, base_for
from labkit.styles.base import Lab, ProjectedScale, Role, Style, as_number, network_profile, with_base, with_network
from labkit.styles.registry import StyleInfo, Variant, register

# The report's names of the variants; the first two are options of the decision.
PLAIN, LONG, SNAPSHOT, ADAPTIVE = "polling", "long polling", "snapshot polling", "adaptive polling"

INFO = StyleInfo(
    name="polling",
    label="API polling",
    colour="#d62728",
    marker="s",
    direction="pull",
    needs_public_endpoint=False,
    dedup_key="event id, and keeps its cursor",
    order=20,
    in_default_comparison=True,
    variants=(
        Variant(PLAIN, PLAIN, "pull"),
        Variant(LONG, LONG, "pull", holds_request=True),
        Variant(SNAPSHOT, None, "pull"),
        Variant(ADAPTIVE, None, "pull"),
    ),
    window_counters=("polls", "empty_polls", "not_modified"),
)

# The cost a poller's model takes from the calibration (labkit.model.calibration): one loopback poll, seconds.
BASE_COSTS = ("poll_s",)
START_TIMEOUT_S = 30.0
SNAPSHOT_TIMEOUT_S = 5.0


def wait_for_file(child: Any, path: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until a worker has written its first stats file: it is up and polling."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if not child.alive():
            raise ServerError(f"{child.name} exited during start-up (code {child.popen.returncode}): {child.log_tail()}")
        if time.monotonic() > deadline:
            raise ServerError(f"{child.name} did not start within {timeout_s:.0f} s: {child.log_tail()}")
        time.sleep(0.02)


def snapshot_stats(child: Any, stats_path: Path, timeout_s: float = SNAPSHOT_TIMEOUT_S) -> dict[str, Any]:
    """The poller fleet's counters at this moment: SIGUSR1 makes it write ``<stats>.snap``."""
    snap = Path(f"{stats_path}.snap")
    snap.unlink(missing_ok=True)
    if not child.alive() or not stats_path.exists():
        return {}  # not up yet: before its first stats file a fleet has no SIGUSR1 handler (the signal would kill it)
    child.popen.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while not snap.exists():
        if time.monotonic() > deadline or not child.alive():
            return {}
        time.sleep(0.001)
    try:
        data = json.loads(snap.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _window_ratio(window: Mapping[str, int], num: str, den: str, fallback: float | None) -> float | None:
    """num/den over the workload window, when the window saw any; else the whole-run figure."""
    d = window.get(den, 0)
    return window.get(num, 0) / d if d > 0 else fallback


class Polling(Style):
    """The consumer pulls: a fleet of pollers in one worker process, one connection each."""

    info = INFO

    def refuse(self, settings: RunSettings) -> str | None:
        if settings.snapshot and settings.audience != "broadcast":
            return "snapshot: the latest version is one for every consumer; a per-consumer or topics audience needs the event feed (snapshot = false)"
        if settings.snapshot and settings.fault is not None:
            return (
                "snapshot: a fault run cannot use the snapshot feed (it skips versions by design, so lost events cannot be counted);"
                " set snapshot = false"
            )
        return None

    def provider_settings(self, settings: RunSettings) -> dict[str, Any]:
        return {"poll_interval_hint_s": settings.poll_interval_s}

    def consumer_names(self, settings: RunSettings) -> list[str]:
        return [f"p{i}" for i in range(settings.pollers)]

    async def start_consumer(self, lab: Lab) -> Role:
        s = await self.fleet_settings(lab, lab.stats_path)
        lab.fault.tune("poller", s, lab)
        lab.consumers = self.consumer_names(lab.settings)
        role = await lab.start("poller", "poller", s, server=False)
        await asyncio.to_thread(wait_for_file, role.child, lab.stats_path)
        return role

    async def fleet_settings(self, lab: Lab, stats_path: Path) -> dict[str, Any]:
        """The poller fleet's settings for this run, its hop to the provider linked (the reconciler of a hybrid starts one too)."""
        st = lab.settings
        base = await lab.link("127.0.0.1", lab.provider.port or 0)
        return {
            "base_url": base,
            "api_key": lab.consumer_key,
            "pollers": st.pollers,
            "interval_s": st.poll_interval_s,
            "conditional": st.conditional,
            "long_poll_wait_s": st.long_poll_wait_s,
            "adaptive": st.adaptive,
            "snapshot": st.snapshot,
            "db_path": str(lab.consumer_db),
            "stats_path": str(stats_path),
            "seed": st.workload.seed,
            "processes": st.consumer_processes,  # >1: the pollers split over that many worker processes
            "api_keys": lab.consumer_keys,  # a non-broadcast audience: each poller reads its own feed with its own key
        }

    async def counters_now(self, lab: Lab) -> dict[str, Any]:
        snap = await asyncio.to_thread(snapshot_stats, lab.consumer.child, lab.stats_path)
        return dict(snap.get("counters") or {})

    def drains_to_last(self, settings: RunSettings) -> bool:
        return settings.snapshot

    def summary(self, run: Any, settings: RunSettings, per: int, rate: float) -> dict[str, Any]:
        counters = run.consumer_stats.get("counters", {})
        window = run.window_counters
        polls = int(counters.get("polls", 0))
        empty = int(counters.get("empty_polls", 0))
        requests = int(counters.get("requests", 0))
        wl = settings.workload
        out: dict[str, Any] = {
            "poll_interval_s": settings.poll_interval_s,
            "polls": polls,
            "empty_polls": empty,
            "not_modified": int(counters.get("not_modified", 0)),
            "empty_poll_ratio": _window_ratio(window, "empty_polls", "polls", empty / polls if polls else None),
            "polls_in_window": window.get("polls"),
            # steady state: the requests of the workload window per event (the edges are not polling's cost)
            "requests_per_event": window["requests"] / per if window.get("requests", 0) > 0 else requests / per,
            "throttled": int(counters.get("throttled", 0)),
            "poll_lateness_ms": counters.get("lateness"),
            "rtt_ms": counters.get("rtt"),
        }
        # the connections the fleet really opened, beside the model's one per poller (model.connections)
        out["connections_opened"] = (run.consumer_stats.get("wire") or {}).get("connections")
        base = base_for(getattr(run, "calibration", None), self.info.name, BASE_COSTS)
        out["model"] = self.network_model(rate, base, settings)
        if settings.snapshot:
            # a snapshot poller misses intermediate versions by design (Bozdag et al. 2007): they count as lost
            out["feed"] = "snapshot"
            out["fraction_seen"] = len(run.events) / per
            out["model"]["fraction_seen"] = model.snapshot_fraction_seen(rate, settings.poll_interval_s, wl.arrival)
        out["model"]["rate_per_s"] = rate
        return out

    def predict(self, settings: RunSettings, calibration: Any) -> dict[str, Any] | None:
        """The model at these settings before any run: the calibrated poll at the workload's rate."""
        block = self.network_model(settings.workload.rate_per_s, base_for(calibration, self.info.name, BASE_COSTS), settings)
        block["rate_per_s"] = settings.workload.rate_per_s
        return block

    def calibration_costs(self, run: Any, settings: RunSettings) -> dict[str, float]:
        """The lab's work per poll on loopback: the mean round trip of a poll."""
        rtt_ms = ((run.consumer_stats.get("counters") or {}).get("rtt") or {}).get("mean")
        return {"poll_s": float(rtt_ms) / 1000} if rtt_ms else {}

    def network_model(self, rate: float, base: Base, settings: RunSettings) -> dict[str, Any]:
        """The polling model with the network's terms, on the calibrated loopback poll (nothing the judged run measured).

        On a fixed timetable an event waits T/2 for the next poll to reach the
        provider, the lab's work on the poll (the calibrated loopback round trip)
        and one way back (``labkit.model.network.polling_latency``); a long poll
        answers one way after the event, plus the re-arm gaps.
        """
        wl = settings.workload
        poll_s = base.get("poll_s")
        block = model.polling_model(
            rate, settings.poll_interval_s, poll_s, arrival=wl.arrival, page_limit=100, long_poll_wait_s=settings.long_poll_wait_s
        )
        block["connections"] = settings.pollers  # each poller keeps one connection open for the run
        profile = network_profile(settings)
        if settings.long_poll_wait_s > 0:
            if profile.is_loopback:
                return with_base(block, base)  # no closed form on loopback: the fleet's round trip includes each hold
            terms = model_network.long_poll_latency(profile, rate, base_s=poll_s, response_bytes=wl.payload_bytes, tls=settings.tls)
        else:
            terms = model_network.polling_latency(
                profile, settings.poll_interval_s, base_s=poll_s, response_bytes=wl.payload_bytes, tls=settings.tls
            )
            # the quantiles shift with the network's terms as the mean does (the wait is uniform on [0, T])
            extra_ms = (terms.total_s - terms.wait_s - poll_s) * 1000
            for q in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms"):
                block[q] = block[q] + extra_ms
        return with_base(with_network(block, terms, settings), base)

    def fault_measures(self, counters: Mapping[str, Any], deliveries: Mapping[str, Any], retry: dict[str, Any]) -> dict[str, Any]:
        return {
            "duplicates_seen": int(counters.get("duplicate_events", 0)),
            "processed_total": int(counters.get("events", 0)),
            # a failed or throttled poll is asked again on a later tick
            "retries": int(counters.get("errors", 0)) + int(counters.get("throttled", 0)),
            "dead_lettered": 0,
            "disabled": 0,
            "attempt_status_counts": {},
            "failed_polls": int(counters.get("errors", 0)),
            "throttled_polls": int(counters.get("throttled", 0)),
        }

    def variant(self, setting: Callable[[str], Any], assumes: str) -> str:
        if (as_number(setting("long_poll_wait_s")) or 0) > 0 or assumes.startswith("long polling"):
            return LONG
        if setting("snapshot") is True:
            return SNAPSHOT
        if setting("adaptive") is True:
            return ADAPTIVE
        return PLAIN

    def project(self, scale: ProjectedScale) -> tuple[float, str]:
        if scale.long_poll_wait_s > 0:
            wait = scale.long_poll_wait_s
            return model.long_poll_requests_per_event(scale.rate_per_s, wait), f"long polling, waits up to {wait:g} s"
        interval = scale.poll_interval_s
        return model.polling_requests_per_event(scale.rate_per_s, interval, scale.page_limit), f"polling every {interval:g} s"

    def model_curve_label(self, batch: int) -> str | None:
        return "model: polling 1/(lambda T)"

    def shows_interval(self) -> bool:
        return True


POLLING = register(INFO, Polling())
