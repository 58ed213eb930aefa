"""Clients served within a latency bound, each variant's limit found: ``labkit served FILE``.

In the spirit of Van de Vyvere, Colpaert and Verborgh (2020): one provider
process, one event stream, an acceptable p99 latency L, and the question how
many consumers it serves within L by each delivery style. A sweep over fixed
steps (100, 300, 1,000, ...) only says the limit lies between two of them; here
each variant of the experiment file gets a search (``labkit.capacity.limits``):
a coarse climb from ``start`` by ``factor``, then bisection until the consumer
count that held and the one that failed are within ``tolerance``. Every probe
is a real run through the one pipeline (``labkit.lab.pipeline``), written like
any sweep point. A run *held* when its p99 latency was within L, nothing was
lost, every publish was accepted and it drained.

The provider has a core of its own by default (``provider_core``): pinned to
one core, the consumer fleets to the others, as one single-threaded server
against clients on other machines. Each run records both CPU shares; when the
run that failed had its fleet out of CPU, the limit is a lower bound and says so.

The file's ``[search]`` table (every key optional)::

    latency_bound_ms = 1000     L
    start = 2000                first consumer count probed ...
    starts = {sse = 4000}       ... or per variant
    factor = 2.0                the coarse climb (and descent)
    tolerance = 0.10            bisect until (failed - held) <= tolerance x held
    max_consumers = 10000       at most (the run settings' own cap by default)
    max_probes = 8              per variant
    time_budget_s = 1140        for the whole search: each variant gets an equal share of what is left
    provider_core = true
    reference = <variant>       the variant every other one is compared with (ratio ranges)

Layout (under the results root)::

    <experiment>/served/<search-id>/<variant>/n<consumers>/summary.json   each probe, a normal run
    <experiment>/served/<search-id>/served.json                           the search (schema_version 1)
    <experiment>/served.json                                              a copy of the latest search
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotated_types import Le
from pydantic import Field, ValidationError

from labkit.capacity.limits import LimitOutcome, LimitSearch, Probe, ratio_range
from labkit.config import RunSettings, Settings, describe_error
from labkit.errors import ConfigError, OpenFilesExhausted, RunError, ServerError
from labkit.results.layout import SCHEMA_VERSION, environment, write_json
from labkit.runs.experiments import Experiment

SERVED_JSON = "served.json"
# A provider that waited this share of a run for its own core shared it with other work: the limit is the busy machine's.
CONTENDED_WAIT_SHARE = 0.2
Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


def _quiet(*_: Any) -> None:
    return None


def fleet_bound() -> int:
    """The most streams the consumer fleet holds here (its processes x each one's share); the provider's own limit is probed."""
    from labkit.consumers.streams import fleet_capacity

    return fleet_capacity()


def consumers_cap() -> int:
    """The most consumers one run takes (``RunSettings.pollers``' own bound)."""
    return _cap("pollers")


def _cap(field_name: str) -> int:
    return next(int(str(m.le)) for m in RunSettings.model_fields[field_name].metadata if isinstance(m, Le))


class SearchSettings(Settings):
    """The ``[search]`` table of an experiment file."""

    latency_bound_ms: float = Field(1000.0, gt=0, le=600_000)
    start: int = Field(2000, ge=1)
    starts: dict[str, int] = Field(default_factory=dict, description="a start per variant")
    factor: float = Field(2.0, gt=1, le=10)
    tolerance: float = Field(0.10, gt=0, lt=1)
    min_consumers: int = Field(1, ge=1)
    max_consumers: int | None = Field(None, ge=1)
    max_probes: int = Field(8, ge=1, le=50)
    time_budget_s: float = Field(1140.0, gt=0, le=24 * 3600)
    provider_core: bool = True
    reference: str | None = None

    def maximum(self) -> int:
        return min(self.max_consumers or consumers_cap(), consumers_cap(), fleet_bound())

    def maximum_why(self) -> str:
        """What sets the most consumers a probe may have."""
        bounds = {"the file's search.max_consumers": self.max_consumers or consumers_cap() + 1}
        bounds |= {"the run settings' cap": consumers_cap(), "the consumer fleet's capacity": fleet_bound()}
        return min(bounds, key=lambda k: bounds[k])


def search_settings(experiment: Experiment, overrides: dict[str, Any] | None = None) -> SearchSettings:
    """The file's ``[search]`` table with the caller's overrides, validated; one line naming the key when bad."""
    data = {**experiment.search, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        s = SearchSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{experiment.path}: {describe_error(exc, 'search.')}") from None
    variants = variant_settings(experiment)
    for name in [*s.starts, *([s.reference] if s.reference else [])]:
        if name not in variants:
            raise ConfigError(f"{experiment.path}: search: no variant {name!r}; the file has {', '.join(variants)}")
    for name, start in s.starts.items():
        if not s.min_consumers <= start <= s.maximum():
            raise ConfigError(f"{experiment.path}: search.starts.{name}: {start} is outside {s.min_consumers}..{s.maximum()}")
    if not s.min_consumers <= s.start <= s.maximum():
        raise ConfigError(f"{experiment.path}: search.start: {s.start} is outside {s.min_consumers}..{s.maximum()}")
    return s


def variant_settings(experiment: Experiment) -> dict[str, RunSettings]:
    """Each variant's settings (its first point's: the consumer count is what the search changes)."""
    out: dict[str, RunSettings] = {}
    for point in experiment.points:
        name = str(point.params.get("variant", experiment.name))
        out.setdefault(name, point.settings)
    return out


def probe_settings(base: RunSettings, consumers: int, provider_core: bool) -> RunSettings:
    """``base`` with ``consumers`` pollers/subscribers and the core plan; a fleet on its own cores runs one process per core."""
    # a webhook's subscriptions have their own, lower cap; a variant without the webhook style never reads them
    subscribers = min(consumers, _cap("subscribers"))
    update: dict[str, Any] = {"pollers": consumers, "subscribers": subscribers, "provider_core": provider_core}
    if provider_core and "consumer_processes" not in base.model_fields_set:
        update["consumer_processes"] = "auto"  # resolved in the pinned child: one per fleet core
    return RunSettings.model_validate({**base.model_dump(), **update})


def judge(block: dict[str, Any], bound_ms: float) -> tuple[bool, str]:
    """Whether one style's run served its consumers: p99 within the bound, nothing lost, all published, drained."""
    p99 = (block.get("latency_ms") or {}).get("p99")
    lost, errors = int(block.get("lost") or 0), int(block.get("publish_errors") or 0)
    if lost:
        return False, f"{lost} deliveries lost"
    if errors:
        return False, f"{errors} publishes refused"
    if not block.get("drained", False):
        return False, "did not drain"
    if p99 is None:
        return False, "no latency measured"
    if p99 > bound_ms:
        return False, f"p99 {p99:.0f} ms > {bound_ms:g} ms"
    return True, f"p99 {p99:.0f} ms <= {bound_ms:g} ms"


def run_probe(settings: RunSettings, out: Path, bound_ms: float, extra: dict[str, Any], progress: Progress = _quiet) -> Probe:
    """One real run at ``settings.pollers`` consumers, judged; a run that broke (a process died) failed."""
    from labkit.lab import pipeline

    n = settings.pollers
    started = time.monotonic()
    try:
        result = pipeline.run(settings, progress=progress, run_id=out.name, results_dir=out, extra=extra)
    except OpenFilesExhausted as exc:
        return out_of_files_probe(n, exc, time.monotonic() - started, out)
    except (RunError, ServerError) as exc:
        return Probe(n, held=False, seconds=time.monotonic() - started, detail={"why": f"the run broke: {exc}", "results_dir": str(out)})
    block = next(iter(result.summary["styles"].values()))
    held, why = judge(block, bound_ms)
    cpu = block.get("cpu") or {}
    detail = {
        "why": why,
        "p99_ms": (block.get("latency_ms") or {}).get("p99"),
        "lost": block.get("lost"),
        "delivered": block.get("delivered"),
        "provider_cpu_share": cpu.get("provider_share"),
        "fleet_cpu_share": cpu.get("fleet_share"),
        "provider_cpu_demand": cpu.get("provider_demand"),
        "fleet_cpu_demand": cpu.get("fleet_demand"),
        "provider_cpu_wait_share": cpu.get("provider_wait_share"),
        "fleet_cores": cpu.get("fleet_cores"),
        "provider_core": bool(cpu.get("pinned")),
        "limited_by_cpu": cpu.get("limited_by"),
        "run_id": result.run_id,
        "results_dir": str(out),
    }
    return Probe(n, held=held, clients_saturated=bool(cpu.get("fleet_saturated")), seconds=time.monotonic() - started, detail=detail)


def open_files_cause(role: str, limit: int) -> str:
    """The words of a limit set by a process's open files, in the table, the JSON and the printed line."""
    return f"the {role}'s open-files limit ({limit} per process)"


def out_of_files_probe(n: int, exc: OpenFilesExhausted, seconds: float, out: Path) -> Probe:
    """A probe whose run stopped at start-up: a process at its open-files limit took no more connections."""
    detail = {
        "why": f"not served: {exc}",
        "open_files": {
            "role": exc.role,
            "open": exc.open_files,
            "limit": exc.limit,
            "connected": exc.connected,
            "requested": exc.requested,
        },
        "results_dir": str(out),
    }
    return Probe(n, held=False, seconds=seconds, detail=detail, cause=open_files_cause(exc.role, exc.limit))


def new_search_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def served_search(
    experiment: Experiment,
    search: SearchSettings,
    *,
    variants: tuple[str, ...] = (),
    log: Log = _quiet,
    progress: Progress = _quiet,
    clock: Callable[[], float] = time.monotonic,
    prober: Callable[[RunSettings, Path, dict[str, Any]], Probe] | None = None,
) -> dict[str, Any]:
    """Search every variant's limit in turn; write and return ``served.json``. ``prober`` replaces the real runs (tests)."""
    plans = variant_settings(experiment)
    chosen = variants or tuple(plans)
    unknown = [v for v in chosen if v not in plans]
    if unknown:
        raise ConfigError(f"--variants: no variant {unknown[0]!r} in {experiment.path}; it has {', '.join(plans)}")
    search_id = new_search_id()
    root = experiment.results_dir / "served" / search_id
    load_before = _load()
    deadline = clock() + search.time_budget_s
    outcomes: dict[str, LimitOutcome] = {}
    for i, name in enumerate(chosen):
        share = (deadline - clock()) / (len(chosen) - i)
        limits = LimitSearch(
            start=min(search.starts.get(name, search.start), search.maximum()),
            maximum=search.maximum(),
            minimum=search.min_consumers,
            factor=search.factor,
            tolerance=search.tolerance,
            max_probes=search.max_probes,
            deadline_s=clock() + share,
            clock=clock,
        )
        while (n := limits.next_load()) is not None:
            settings = probe_settings(plans[name], n, search.provider_core)
            extra = {"experiment": experiment.name, "served_search": search_id, "params": {"variant": name, "consumers": n}}
            out = root / name / f"n{n}"
            log(f"{name}: {n} consumers ...")
            probe = (prober or _real_prober(search.latency_bound_ms, progress))(settings, out, extra)
            limits.record(probe)
            log(f"{name}: {n} consumers {'held' if probe.held else 'failed'}: {_probe_line(probe)}")
        outcomes[name] = limits.outcome()
        log(f"{name}: limit {outcomes[name].label()}")
    doc = served_document(experiment, search, search_id, outcomes, load_before, _load())
    write_json(root / SERVED_JSON, doc)
    write_json(experiment.results_dir / SERVED_JSON, doc)
    return doc


def _real_prober(bound_ms: float, progress: Progress) -> Callable[[RunSettings, Path, dict[str, Any]], Probe]:
    def probe(settings: RunSettings, out: Path, extra: dict[str, Any]) -> Probe:
        return run_probe(settings, out, bound_ms, extra, progress)

    return probe


def _probe_line(probe: Probe) -> str:
    d = probe.detail
    shares = ""
    if d.get("provider_cpu_share") is not None and d.get("fleet_cpu_share") is not None:
        shares = (
            f"; CPU used (asked for): provider {d['provider_cpu_share']:.0%} ({d.get('provider_cpu_demand') or 0:.0%}) of its core,"
            f" fleet {d['fleet_cpu_share']:.0%} ({d.get('fleet_cpu_demand') or 0:.0%}) of {d.get('fleet_cores')}"
        )
    return f"{d.get('why', '')}{shares}"


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - no load average on this platform
        return None


def served_document(
    experiment: Experiment,
    search: SearchSettings,
    search_id: str,
    outcomes: dict[str, LimitOutcome],
    load_before: list[float] | None,
    load_after: list[float] | None,
) -> dict[str, Any]:
    """``served.json``: each variant's limit with its bracketing runs, the ratios to the reference, the machine's load."""
    ratios: dict[str, Any] = {}
    ref = search.reference
    if ref is not None and ref in outcomes:
        for name, outcome in outcomes.items():
            if name != ref:
                low, high = ratio_range(outcome, outcomes[ref])
                ratios[name] = {"over": ref, "low": low, "high": high}
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment.name,
        "search_id": search_id,
        "question": experiment.question,
        "source": str(experiment.path),
        "results_dir": str(experiment.results_dir / "served" / search_id),
        "search": search.model_dump(mode="json"),
        "latency_bound_ms": search.latency_bound_ms,
        "maximum": {"consumers": search.maximum(), "set_by": search.maximum_why()},
        "variants": {name: o.to_json() for name, o in outcomes.items()},
        "ratios": ratios,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cores": len(os.sched_getaffinity(0)),
        "environment": environment(),
    }


def load_served(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``served.json`` (or the folder holding it), refusing an unknown schema_version."""
    from labkit.results.layout import read_versioned_json

    return read_versioned_json(Path(path), SERVED_JSON, "served search", "; run labkit served first")


def cpu_run(variant: dict[str, Any]) -> dict[str, Any]:
    """The run whose CPU shares a variant's row shows: the failed one, or the held one when the failed run has none.

    A probe the provider could not take (its open files) stopped before the workload, so it measured no CPU.
    """
    held, failed = variant.get("held") or {}, variant.get("failed") or {}
    return failed if failed.get("provider_cpu_share") is not None or not held else held


def served_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant: the limit, the run above it, both p99s, both CPU shares of the deciding run, the label."""
    rows = []
    for name, v in doc["variants"].items():
        held, failed = v.get("held") or {}, v.get("failed") or {}
        deciding = cpu_run(v)
        rows.append(
            {
                "variant": name,
                "limit": v["limit"],
                "failed_at": v["upper"],
                "lower_bound": v["lower_bound"],
                "limited_by": v["limited_by"],
                "within_tolerance": v["within_tolerance"],
                "p99_ms_held": held.get("p99_ms"),
                "p99_ms_failed": failed.get("p99_ms"),
                "why_failed": failed.get("why"),
                "provider_cpu_share": deciding.get("provider_cpu_share"),
                "provider_cpu_demand": deciding.get("provider_cpu_demand"),
                "fleet_cpu_share": deciding.get("fleet_cpu_share"),
                "fleet_cpu_demand": deciding.get("fleet_cpu_demand"),
                "provider_cpu_wait_share": deciding.get("provider_cpu_wait_share"),
                "probes": len(v["probes"]),
                "label": v["label"],
            }
        )
    return rows


def ratio_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant against the reference: the ratio range both brackets support (None: an open end)."""
    return [{"variant": name, "over": r["over"], "low": r["low"], "high": r["high"]} for name, r in doc.get("ratios", {}).items()]
