"""The capacity projection a report shows: each style's cost model at the requirements' scale, labelled as a projection."""

from __future__ import annotations

import inspect
import math
import re
import statistics
from dataclasses import dataclass
from typing import Any

from labkit import styles
from labkit.report.decide import Recommendation
from labkit.report.observations import fmt, num, round_sig
from labkit.report.policy import LONG_POLL_WAIT_S
from labkit.report.requirements import Requirements
from labkit.report.sources import Sources, redact, redact_text
from labkit.report.terms import FALLBACK, LONG_POLLING, POLLING, THIN, WEBHOOK


@dataclass(frozen=True)
class Projection:
    available: bool
    reason: str | None = None
    inputs: tuple[tuple[str, str], ...] = ()
    styles: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]], ...] = ()
    assumes: str = ""
    calibration: tuple[tuple[str, str], ...] = ()
    source_runs: tuple[str, ...] = ()
    budget: tuple[str, ...] = ()


_PROJECTION_LABELS = {
    "variant": "variant",
    "events_per_s": "events delivered per second",
    "requests_per_event": "requests per event (model)",
    "requests_per_s": "requests per second",
    "bytes_per_event": "bytes per event",
    "bandwidth_gbit_s": "bandwidth (Gbit/s)",
    "bandwidth_bytes_per_s": "bandwidth (bytes/s)",
    "provider_cpu_s_per_s": "provider CPU-seconds per second",
    "provider_cores": "provider cores",
    "provider_servers": "provider servers",
    "consumer_cpu_s_per_s": "consumer CPU-seconds per second (all consumers)",
    "consumer_cores": "consumer cores (all consumers)",
    "consumer_servers": "consumer servers (all consumers)",
}


def compute_projection(sources: Sources, req: Requirements, rec: Recommendation) -> Projection:
    """The capacity projection at the user's scale, or why it cannot be computed."""
    try:
        from labkit.analysis.calibration import fit_costs, project
    except ImportError as exc:
        return Projection(False, reason=f"labkit.analysis.calibration is not available ({error_reason(exc)})")
    # the fallback hybrid polls only to reconcile; the other options show polling at the target's interval
    interval = rec.poll_interval_s or rec.operating_point.get("poll_interval_s") or _measured_interval(sources) or 1.0
    kwargs: dict[str, Any] = {"consumers": req.consumers, "rate_per_s": req.event_rate_per_s, "poll_interval_s": interval}
    try:
        if rec.option == LONG_POLLING and "long_poll_wait_s" in inspect.signature(project).parameters:
            kwargs["long_poll_wait_s"] = LONG_POLL_WAIT_S
        calibration = fit_costs(sources.results)
        result = project(calibration, **kwargs)
    except Exception as exc:  # the projection is a section of the report, not a reason to fail it
        return Projection(False, reason=error_reason(exc))
    if not isinstance(result, dict) or result.get("kind") != "projection":
        return Projection(False, reason="labkit.analysis.calibration.project did not return a result labelled 'projection'")
    result = redact(result)
    cal = result.get("calibration")
    if cal is None and hasattr(calibration, "to_dict"):
        cal = redact(calibration.to_dict())
    styles = []
    budget = []
    for style, data in (result.get("styles") or {}).items():
        if not isinstance(data, dict):
            continue
        rows = tuple((_PROJECTION_LABELS.get(k, k.replace("_", " ")), _show(v)) for k, v in data.items() if k not in ("kind", "notes"))
        styles.append((f"{style}: {_role(str(style), rec, req, interval)}", rows, _notes(data.get("notes") or [])))
        budget += _budget_lines(style, data, req)
    pair = _push_and_pull(result.get("styles") or {})
    if rec.option == FALLBACK and pair:
        both = {
            "provider_servers": _both_servers(result, "provider_cores", pair),
            "bandwidth_bytes_per_s": sum(num(result["styles"][s].get("bandwidth_bytes_per_s")) or 0.0 for s in pair),
        }
        budget += _budget_lines("push and reconciliation together", both, req)
    if not styles:  # an unfamiliar shape: show it flat rather than not at all
        styles.append(("projection", tuple((k, _show(v)) for k, v in _flatten(result).items() if not k.startswith("calibration")), ()))
    return Projection(
        True,
        inputs=tuple((k.replace("_", " "), _show(v)) for k, v in (result.get("inputs") or kwargs).items()),
        styles=tuple(styles),
        assumes=str(result.get("assumes") or ""),
        calibration=tuple(
            (k, _show(v)) for k, v in _flatten(cal or {}).items() if k not in ("kind", "source_runs") and not _exact_r2(k, cal)
        ),
        source_runs=tuple(str(r) for r in ((cal or {}).get("source_runs") or [])),
        budget=tuple(budget),
    )


def _exact_r2(key: str, cal: dict[str, Any] | None) -> bool:
    """``fits.<style>.<quantity>.r2`` of an exact fit (as many runs as costs): an R^2 of 1 that says nothing, not quoted."""
    parts = key.split(".")
    if len(parts) != 4 or parts[0] != "fits" or parts[3] != "r2" or not cal:
        return False
    fit = (cal.get("fits") or {}).get(parts[1], {}).get(parts[2], {})
    return isinstance(fit, dict) and fit.get("exact") is True


def _push_and_pull(projected: dict[str, Any]) -> tuple[str, str] | None:
    """The first projected push style a consumer receives at an endpoint, and the first pulled one (push + reconciliation)."""
    infos = [i for i in styles.all_styles() if i.name in projected]
    push = [i.name for i in infos if i.family == "push"]
    pull = [i.name for i in infos if i.family == "pull"]
    return (push[0], pull[0]) if push and pull else None


def _both_servers(result: dict[str, Any], cores_key: str, pair: tuple[str, str]) -> float | None:
    cores = [num(result["styles"][s].get(cores_key)) for s in pair]
    per_server = num((result.get("inputs") or {}).get("cores_per_server"))
    if any(c is None for c in cores) or not per_server:
        return None
    return float(max(1, math.ceil(sum(cores) / per_server)))  # type: ignore[arg-type]


def shows_interval(style: str) -> bool:
    return styles.get(style) is not None and styles.unit(style).shows_interval()


def _notes(notes: list[Any]) -> tuple[str, ...]:
    """The fit's notes, once each: "provider_cpu_s: text" and "bytes: text" with one text become "provider_cpu_s, bytes: text"."""
    by_text: dict[str, list[str]] = {}
    for note in map(str, notes):
        quantity, sep, text = note.partition(": ")
        if not sep:
            quantity, text = "", note
        by_text.setdefault(text, []).append(quantity)
    return tuple((", ".join(q for q in qs if q) + ": " if any(qs) else "") + text for text, qs in by_text.items())


def _role(style: str, rec: Recommendation, req: Requirements, interval: float) -> str:
    """What a projected style is to the recommendation: the choice, a part of it, or the alternative."""
    info = styles.get(style)
    chosen = rec.stream_style
    if chosen is not None:  # a held stream was chosen
        return "the recommendation" if chosen == style else "the alternative"
    if info is not None and info.needs_public_endpoint and not req.consumers_can_expose_https:
        return "for comparison only (these consumers cannot receive webhooks)"
    if info is not None and info.direction == "push":
        return "the recommendation" if rec.option in (WEBHOOK, THIN) else "the push path" if rec.option == FALLBACK else "the alternative"
    if rec.option == FALLBACK:
        return f"the reconciliation poller, every {fmt(interval)} s"
    if rec.option in (POLLING, LONG_POLLING):
        return "the recommendation"
    return f"the alternative, polling every {fmt(interval)} s"


def _budget_lines(style: str, data: dict[str, Any], req: Requirements) -> list[str]:
    lines = []
    servers = num(data.get("provider_servers"))
    if servers is not None and req.budget.servers is not None:
        verdict = "within" if servers <= req.budget.servers else "over"
        lines.append(
            f"{style}: {fmt(servers)} provider server{'s' if servers != 1 else ''}, {verdict} the budget of {fmt(req.budget.servers)}"
        )
    bps = num(data.get("bandwidth_bytes_per_s"))
    if bps is not None and req.budget.bandwidth_gb_per_month is not None:
        gb = bps * 30 * 24 * 3600 / 1e9
        verdict = "within" if gb <= req.budget.bandwidth_gb_per_month else "over"
        lines.append(
            f"{style}: about {fmt(round_sig(gb, 3))} GB a month, {verdict} the budget of {fmt(req.budget.bandwidth_gb_per_month)} GB"
        )
    return lines


def _measured_interval(sources: Sources) -> float | None:
    values = [v for v in (num(x) for x in sources.results.get("poll_interval_s", [])) if v]
    return statistics.median(values) if values else None


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = data
    return out


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value)
    return fmt(value)


# --------------------------------------------------------------------------- the measurements table


def error_reason(exc: BaseException) -> str:
    """One line for an error a report section survives: no file paths, no secrets."""
    if isinstance(exc, ImportError):  # "cannot import name 'x' from 'labkit.analysis.figures'", without the file path
        return re.sub(r"\s*\([^()]*\)$", "", str(exc)) or f"{exc.name} is not available"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact_text(f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__)
