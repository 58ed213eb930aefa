"""Predicted, then measured: each candidate's model numbers, written before its run, beside what the run measured.

``labkit decide`` writes ``predictions.json`` (``labkit.runs.predictions``)
before it runs a candidate: the model on this machine's calibration at the
operating point, nothing measured. The report only reads that file (in a
results folder it was given, or the folder that holds it) and sets each
prediction beside the run's summary, with their agreement:

- the mean latency by ``labkit.model.agreement`` (10 % of the model, or 2 ms
  under 20 ms; standard error sd / sqrt(n));
- the p99 by the same bound, its standard error approximated from the order
  statistics (``weigh.p99_se``, the one the options table uses).

A disagreement beyond its bound is a risk of the evidence, not of the option:
the report lists it under its risks with what it means for the decision (the
choice rests on the measurement, and any projection of that candidate from the
model is less certain). A report without a predictions file shows neither.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.model.agreement import latency_agreement, latency_bound_ms
from labkit.report.decide import Recommendation
from labkit.report.observations import Obs, Observations, fmt, round_sig
from labkit.report.weigh import OptionRow, p99_se
from labkit.results import columns as cols

FILE = "predictions.json"
SCHEMA_VERSION = 1
ASKED = "asked_runs"  # the run ids a document's finder was asked for; None: every run (the whole decision)


@dataclass(frozen=True)
class Check:
    """One latency of one candidate: the model's figure, the measured one, the bound and the standard error."""

    quantity: str  # "mean" | "p99"
    predicted: float | None
    measured: float | None
    bound: float | None
    se: float | None

    @property
    def agrees(self) -> bool | None:
        """Within the bound of the model (None when either side is missing)."""
        if self.predicted is None or self.measured is None or self.bound is None:
            return None
        return abs(self.measured - self.predicted) <= self.bound

    @property
    def off_se(self) -> float | None:
        """How many standard errors the measurement sits above (+) or below (-) the model."""
        if self.predicted is None or self.measured is None or not self.se:
            return None
        return (self.measured - self.predicted) / self.se

    def shown(self) -> str:
        """The agreement in words: within or beyond the bound, and the distance in standard errors."""
        if self.agrees is None:
            return "\u2014"
        word = "within" if self.agrees else "beyond"
        z = self.off_se
        return f"{word} {_ms(self.bound)} ms" + (f" ({z:+.1f} SE)" if z is not None and math.isfinite(z) else " (no SE)")


@dataclass(frozen=True)
class Predicted:
    """One candidate's prediction beside its run."""

    label: str
    run_id: str
    style: str
    base_source: str
    assumes: str
    measured: bool  # the report has the run's summary
    checks: tuple[Check, ...]
    requests: tuple[float | None, float | None]  # per event: model, measured
    connections: tuple[float | None, float | None]  # model, opened

    @property
    def disagrees(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.agrees is False)

    def to_dict(self) -> dict[str, Any]:
        """The row for ``labkit report --json``: ``labkit decide --json``'s keys for the mean, and the same for the p99."""
        row: dict[str, Any] = {
            "label": self.label,
            "style": self.style,
            "run_id": self.run_id,
            "base_source": self.base_source,
            "measured": self.measured,
            "predicted_connections": self.connections[0],
            "measured_connections": self.connections[1],
            "predicted_requests_per_event": self.requests[0],
            "measured_requests_per_event": self.requests[1],
        }
        for c in self.checks:
            prefix = "" if c.quantity == "mean" else f"{c.quantity}_"
            row[f"predicted_latency_{c.quantity}_ms"] = c.predicted
            row[f"measured_latency_{c.quantity}_ms"] = c.measured
            row[f"{prefix}bound_ms"] = c.bound
            row[f"{prefix}se_ms"] = c.se
            row[f"{prefix}agrees"] = c.agrees
        return row


def find_predictions(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Every ``predictions.json`` in a given folder, the folder that holds it (a decision's run folders) or one below, each once.

    A file that cannot be read, or of another schema, is left out: the
    prediction is a check of the evidence, and its absence must not cost the
    report. Each document says which of its runs were asked for (``ASKED``):
    all of them when it was found at or below a given folder, else the run
    folders given beside it (``labkit decide`` gives every candidate's, run or not).
    """
    found: dict[Path, tuple[bool, set[str]]] = {}
    for p in paths:
        root = Path(p)
        root = root.parent if root.is_file() else root
        for path, whole in ((root / FILE, True), (root.parent / FILE, False), *((q, True) for q in sorted(root.glob(f"*/{FILE}")))):
            if not path.is_file():
                continue
            key = path.resolve()
            was_whole, runs = found.get(key, (False, set()))
            found[key] = (was_whole or whole, runs if whole else runs | {root.name})
    docs = []
    for path, (whole, runs) in found.items():
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema_version") == SCHEMA_VERSION:
            docs.append({**doc, ASKED: None if whole else sorted(runs)})
    return docs


def beside(docs: Sequence[dict[str, Any]], obs: Observations) -> list[Predicted]:
    """Each prediction beside the observation of its run and style.

    A prediction whose run the report did not read is shown (unmeasured) when
    its run was asked for (the whole decision, or its run folder given): given
    one run of a decision, the report shows that run's prediction, not every
    other candidate's.
    """
    by_run = {(o.run_id, o.style): o for o in obs}
    out = []
    for doc in docs:
        asked = doc.get(ASKED)
        for point in doc.get("points") or []:
            o = by_run.get((str(point.get("run_id")), str(point.get("style"))))
            if o is not None or asked is None or str(point.get("run_id")) in asked:
                out.append(_one(point, o))
    return out


def _one(point: dict[str, Any], o: Obs | None) -> Predicted:
    pred = point.get("predicted") or {}
    mean_p, p99_p = _num(pred.get("latency_mean_ms")), _num(pred.get("latency_p99_ms"))
    checks: list[Check] = []
    if mean_p is not None:
        mean_m, sd, n = (o.get(cols.LATENCY_MEAN), o.get(cols.LATENCY_SD), o.get(cols.DELIVERED)) if o else (None, None, None)
        se = latency_agreement(mean_p, sd or 0.0, int(n)).se if mean_m is not None and n and n >= 2 else None
        checks.append(Check("mean", mean_p, mean_m, latency_bound_ms(mean_p), se))
    if p99_p is not None:
        p99_m = o.get(cols.LATENCY_P99) if o else None
        checks.append(Check("p99", p99_p, p99_m, latency_bound_ms(p99_p), p99_se(o) if o else None))
    return Predicted(
        label=str(point.get("label") or point.get("style")),
        run_id=str(point.get("run_id")),
        style=str(point.get("style")),
        base_source=str(point.get("base_source") or "none"),
        assumes=str(point.get("assumes") or ""),
        measured=o is not None,
        checks=tuple(checks),
        requests=(_num(pred.get("requests_per_event")), o.get(cols.REQUESTS_PER_EVENT) if o else None),
        connections=(_num(pred.get("connections")), o.get("connections_opened") if o else None),
    )


def table(rows: Sequence[Predicted]) -> list[dict[str, Any]]:
    """The rows as the templates show them: each figure model / measured, each latency's agreement."""
    out = []
    for r in rows:
        checks = {c.quantity: c for c in r.checks}
        mean, p99 = checks.get("mean"), checks.get("p99")
        out.append(
            {
                "label": r.label,
                "run_id": r.run_id,
                "base": r.base_source,
                "measured": r.measured,
                "mean": _pair(mean.predicted if mean else None, mean.measured if mean else None),
                "mean_agreement": mean.shown() if mean else "\u2014",
                "mean_agrees": mean.agrees if mean else None,
                "p99": _pair(p99.predicted if p99 else None, p99.measured if p99 else None),
                "p99_agreement": p99.shown() if p99 else "\u2014",
                "p99_agrees": p99.agrees if p99 else None,
                "requests": _pair(*r.requests, digits=3),
                "connections": _pair(*r.connections, digits=3),
            }
        )
    return out


def risks(rows: Sequence[Predicted], rec: Recommendation) -> list[dict[str, str]]:
    """Each disagreement beyond its bound: what disagrees, and what it means for this decision."""
    out = []
    for r in rows:
        for c in r.disagrees:
            out.append({"candidate": r.label, "what": _what(r, c), "means": _means(r, c, _weighed(r, rec), rec)})
    return out


def _weighed(r: Predicted, rec: Recommendation) -> OptionRow | None:
    """The options table's row that weighed this run's measurement (a projected row built from it is not that row)."""
    rows = [row for row in rec.options if row.run_id == r.run_id and row.style == r.style]
    measured = [row for row in rows if row.basis != "projected"]
    best = measured or rows
    return best[0] if best else None


def _what(r: Predicted, c: Check) -> str:
    assert c.measured is not None and c.predicted is not None  # a disagreement has both sides
    side = "above" if c.measured > c.predicted else "below"
    z = c.off_se
    dist = f"{abs(z):.1f} SE {side}" if z is not None and math.isfinite(z) else f"{side} (no SE)"
    return (
        f"the measured {c.quantity} latency {_ms(c.measured)} ms is {dist} the model's {_ms(c.predicted)} ms"
        f" (bound {_ms(c.bound)} ms; base {r.base_source})"
    )


def _means(r: Predicted, c: Check, row: OptionRow | None, rec: Recommendation) -> str:
    assert c.measured is not None and c.predicted is not None
    if c.measured > c.predicted:
        cause = "the lab's own costs at this rate are higher than calibrated, or the model misses a cost (queueing, connections, the machine's load)"
    else:
        cause = "the model overstates a cost of this style on this machine (a term it charges that the run did not pay)"
    if row is None:
        role = "this run is not the one the options table weighed, so the choice does not rest on it"
    elif row.chosen:
        role = (
            f"the recommendation ({rec.option}) rests on the measurement, not on the model; a projection of it beyond the measured"
            " scale uses the same model and is less certain"
        )
    else:
        role = (
            f"{row.option} was not chosen ({row.why or 'see the options table'}), a verdict on its measurement, so the choice"
            " stands; the model's figures for it are not to be trusted here"
        )
    return f"{cause}; {role}."


def _pair(model: float | None, measured: float | None, digits: int = 3) -> str:
    return f"{_sig(model, digits)} / {_sig(measured, digits)}"


def _sig(value: float | None, digits: int = 3) -> str:
    return "\u2014" if value is None else fmt(round_sig(float(value), digits) if value else value)


def _ms(value: float | None) -> str:
    return _sig(value, 3)


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
