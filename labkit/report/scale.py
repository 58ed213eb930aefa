"""Whether each headline number was measured at the user's operating point, at a smaller scale, or projected.

A number measured on loopback with one consumer is true, but not for the
user's 2,000 consumers across regions over HTTPS. Every headline number of a
report carries one of three labels:

    measured      measured at the operating point: the requirement's consumers,
                  event rate, network profile and TLS setting
    scaled        measured at a stated smaller scale (the differences are named)
    projected     computed by the model from the measurements, not measured

``headlines(results, req, projection_rows)`` is pure; the renderer puts the
label next to each number and ``labkit decide --json`` lists them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from labkit import styles
from labkit.report.observations import Obs, Observations, fmt, logdist, nearest, observations, round_sig
from labkit.report.requirements import Requirements
from labkit.results import columns as cols

MEASURED, SCALED, PROJECTED = "measured", "scaled", "projected"
LABELS = {
    MEASURED: "measured at the operating point",
    SCALED: "measured at a smaller scale",
    PROJECTED: "projected",
}

# (name, column, unit, scale): the per-style numbers a reader takes away
HEADLINE_MEASURES: tuple[tuple[str, str, str, float], ...] = (
    ("latency p50", cols.LATENCY_P50, "ms", 1.0),
    ("latency p99", cols.LATENCY_P99, "ms", 1.0),
    ("requests per event", "requests_per_event", "", 1.0),
    ("bytes per event", "bytes_per_event", "B", 1.0),
    ("lost events", "lost", "", 1.0),
)
RATE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Headline:
    """One headline number and how it was obtained."""

    style: str
    name: str
    value: float | None
    unit: str
    basis: str  # measured | scaled | projected
    basis_text: str  # the label, with the stated scale for "scaled"
    run_id: str | None

    @property
    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        v = self.value
        return fmt(v if float(v).is_integer() else round_sig(v, 3)) + (f" {self.unit}" if self.unit else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def applied(row: dict[str, Any]) -> tuple[str, bool]:
    """(network profile name, TLS) the run really had.

    A pipeline that applies the profile and TLS records them in the summary's
    ``workload`` block; a run without that record went over plain loopback,
    whatever its settings asked for.
    """
    if not _present(row.get("workload.tls")):
        return "loopback", False
    net = row.get("workload.network")
    name = str(net.get("name") or "custom") if isinstance(net, dict) else "loopback"
    return name, _is_true(row.get("workload.tls"))


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 1)


def differences(o: Obs, req: Requirements) -> list[str]:
    """How a run differs from the requirement's operating point, in words; empty when it is the operating point."""
    out = []
    if o.consumers is not None and o.consumers != req.consumers:
        out.append(f"{o.consumers:,} of {req.consumers:,} consumers")
    if o.rate is not None and abs(o.rate - req.event_rate_per_s) > RATE_TOLERANCE * req.event_rate_per_s:
        out.append(f"{fmt(o.rate)} events/s, not {fmt(req.event_rate_per_s)}")
    got_net, tls = applied(o.row)
    want_net = req.network_profile.name
    if got_net != want_net:
        out.append(f"network {got_net}, not {want_net}")
    if tls != req.tls:
        out.append("over HTTPS" if tls else "without TLS")
    return out


def _stated(o: Obs) -> list[str]:
    """The scale-down the run itself states (``labkit decide`` writes it into the run's params)."""
    notes = o.row.get("param.scale_notes")
    if isinstance(notes, (list, tuple)):
        return [str(n) for n in notes]
    return []


def basis_of(o: Obs, req: Requirements) -> tuple[str, str]:
    """(basis, text) for a number measured in run ``o``."""
    diff = differences(o, req)
    if not diff:
        return MEASURED, LABELS[MEASURED]
    smaller = o.consumers != req.consumers or "events/s" in diff[0]
    return SCALED, f"{LABELS[SCALED] if smaller else 'measured, not at the operating point'}: " + "; ".join(diff)


def _closest(obs: Sequence[Obs], req: Requirements) -> Obs | None:
    """The run nearest the operating point: fewest differences, then nearest in consumers and rate."""
    return nearest(
        obs,
        lambda o: (
            len(differences(o, req)) * 100 + min(logdist(o.consumers, req.consumers), 50) + min(logdist(o.rate, req.event_rate_per_s), 50)
        ),
    )


def headlines(results: pd.DataFrame | Observations, req: Requirements, projected: Iterable[tuple[str, str, str]] = ()) -> list[Headline]:
    """The headline numbers of a report, each with its basis.

    ``projected`` is (style, name, shown value) from the capacity projection;
    each becomes a ``projected`` headline.
    """
    by_style: dict[str, dict[str, list[Obs]]] = {}
    for o in observations(results):
        by_style.setdefault(o.style, {}).setdefault(o.variant, []).append(o)
    out: list[Headline] = []
    for style in [s.name for s in styles.all_styles()] + sorted(set(by_style) - set(styles.names())):
        variants = by_style.get(style, {})
        for variant, obs in sorted(variants.items()):
            best = _closest(obs, req)
            if best is None:
                continue
            # a style measured in several variants (polling and long polling) shows each under its variant's name
            shown = style if len(variants) == 1 else variant
            basis, text = basis_of(best, req)
            for name, col, unit, scale in HEADLINE_MEASURES:
                value = best.get(col)
                out.append(Headline(shown, name, None if value is None else value * scale, unit, basis, text, best.run_id))
    for style, name, shown in projected:
        value = _number(shown)
        out.append(
            Headline(
                style, name, value, "", PROJECTED, f"{LABELS[PROJECTED]} to {req.consumers:,} consumers by the fitted cost model", None
            )
        )
    return out


# the projection's rows a reader takes away as headline numbers (all labelled "projected")
PROJECTED_HEADLINES = ("requests per second", "provider servers", "bandwidth (bytes/s)", "consumer servers (all consumers)")


def projected_rows(projection: Any) -> list[tuple[str, str, str]]:
    """(style, name, shown value) of a report's capacity projection (``render.Projection``) headline rows."""
    out = []
    for label, rows, _ in projection.styles if projection.available else ():
        style = str(label).split(":", 1)[0]
        out += [(style, name, value) for name, value in rows if name in PROJECTED_HEADLINES]
    return out


def _number(shown: str) -> float | None:
    try:
        v = float(str(shown).replace(",", ""))
    except ValueError:
        return None
    return None if math.isnan(v) else v


def scale_notes(results: pd.DataFrame | Observations) -> list[tuple[str, str, list[str]]]:
    """(run id, style, the scale-down the run states) for every run that states one."""
    return [(o.run_id, o.style, n) for o in observations(results) if (n := _stated(o))]


def budget_notes(results: pd.DataFrame | Observations) -> list[str]:
    """How ``labkit decide`` spent its time budget and what it cut, as its runs recorded it (each note once)."""
    out: list[str] = []
    for o in observations(results):
        notes = o.row.get("param.budget_notes")
        if isinstance(notes, (list, tuple)):
            out += [str(n) for n in notes if str(n) not in out]
    return out
