"""Predicted, then measured: each candidate's model numbers written before its run, then set beside what it measured.

A decision that only measures cannot say whether the lab understood what it
measured. So before ``labkit decide`` runs a candidate, ``write_predictions``
records what the model says the candidate will show at its operating point
(the style's ``predict``: the same model block a summary carries, made from
the settings and the machine's calibration alone, nothing measured). After
the runs, ``beside`` puts each prediction next to the measurement with its
agreement (the latency bound and standard error of ``labkit.model.agreement``),
and a disagreement beyond its bound is a risk, with what it means.

Small and separate on purpose: any planner (``labkit decide``, a sweep) calls
``predict_points`` / ``write_predictions`` with (label, run id, style,
settings) and ``beside`` with the finished summaries.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.config import RunSettings
from labkit.model.agreement import latency_agreement
from labkit.model.calibration import NONE, Calibration
from labkit.styles.base import unit

SCHEMA_VERSION = 1
FILE = "predictions.json"
# The model's figures a prediction carries (from the style's model block), when the style has them.
FIGURES = ("latency_mean_ms", "latency_p99_ms", "requests_per_event", "empty_poll_ratio", "connections")


@dataclass(frozen=True)
class Candidate:
    """One run a planner is about to make: its label, run id, style and settings."""

    label: str
    run_id: str
    style: str
    settings: RunSettings


def predict(candidate: Candidate, calibration: Calibration | None) -> dict[str, Any]:
    """The model's figures for one candidate at its settings, and the base they stand on (``none`` without a calibration)."""
    block = unit(candidate.style).predict(candidate.settings, calibration)
    figures = {k: block.get(k) for k in FIGURES if block is not None and block.get(k) is not None} if block else {}
    return {
        "label": candidate.label,
        "run_id": candidate.run_id,
        "style": candidate.style,
        "predicted": figures,
        "base_source": (block or {}).get("base_source", NONE),
        "assumes": (block or {}).get("assumes"),
    }


def predict_points(candidates: Iterable[Candidate], calibration: Calibration | None) -> dict[str, Any]:
    """The predictions document for every candidate (``schema_version`` 1)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "model",
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "calibration": calibration.source if calibration is not None else NONE,
        "points": [predict(c, calibration) for c in candidates],
    }


def write_predictions(folder: Path, candidates: Iterable[Candidate], calibration: Calibration | None) -> Path:
    """Write ``<folder>/predictions.json`` (before the runs: the file's time says so) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE
    path.write_text(json.dumps(predict_points(candidates, calibration), indent=2))
    return path


def beside(predictions: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each prediction beside its measurement: one row per candidate (by run id) and latency, with the agreement.

    ``summaries`` maps a run id to its summary.json. The mean latency is judged
    by ``labkit.model.agreement`` (10 % of the model, or 2 ms under 20 ms, with
    the measured standard error); a disagreement beyond the bound is a risk.
    """
    rows = []
    for point in predictions.get("points") or []:
        summary = summaries.get(point["run_id"])
        block = ((summary or {}).get("styles") or {}).get(point["style"]) or {}
        lat = block.get("latency_ms") or {}
        predicted = (point.get("predicted") or {}).get("latency_mean_ms")
        row: dict[str, Any] = {
            "label": point["label"],
            "style": point["style"],
            "base_source": point.get("base_source", NONE),
            "predicted_latency_mean_ms": predicted,
            "measured_latency_mean_ms": lat.get("mean"),
            "predicted_connections": (point.get("predicted") or {}).get("connections"),
            "measured_connections": block.get("connections_opened"),
            "predicted_requests_per_event": (point.get("predicted") or {}).get("requests_per_event"),
            "measured_requests_per_event": block.get("requests_per_event"),
        }
        n = int(block.get("delivered") or 0)
        if predicted is not None and lat.get("mean") is not None and n >= 2:
            a = latency_agreement(float(predicted), float(lat.get("sd") or 0.0), n, measured_ms=float(lat["mean"]))
            row.update(bound_ms=a.bound, se_ms=a.se, width_se=a.width_se if math.isfinite(a.width_se) else None, agrees=a.agrees)
            row["risk"] = None if a.agrees else risk_text(row)
        rows.append(row)
    return rows


def risk_text(row: Mapping[str, Any]) -> str:
    """What a prediction missed by more than its bound means, in one sentence."""
    p, m = float(row["predicted_latency_mean_ms"]), float(row["measured_latency_mean_ms"])
    more = "slower" if m > p else "faster"
    return (
        f"{row['label']}: measured mean {m:.1f} ms against a predicted {p:.1f} ms (bound {row['bound_ms']:.1f} ms): the run was {more}"
        f" than the model of this machine ({row['base_source']}) says; either the machine was busier or quieter than when it"
        " was calibrated, or the model misses a cost, so this measurement is not yet explained and should not be extrapolated"
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    """The predicted-beside-measured table, and the risks, as Markdown."""
    out = [
        "## Predicted, then measured",
        "",
        "| candidate | base | predicted mean (ms, model) | measured mean (ms) | bound (ms) | SE (ms) | agrees | connections: model / opened |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        agrees = {True: "yes", False: "**no**", None: "-"}[r.get("agrees")]
        out.append(
            f"| {r['label']} | {r['base_source']} | {_f(r['predicted_latency_mean_ms'])} | {_f(r['measured_latency_mean_ms'])}"
            f" | {_f(r.get('bound_ms'))} | {_f(r.get('se_ms'), '.2f')} | {agrees}"
            f" | {_f(r['predicted_connections'])} / {_f(r['measured_connections'], '.0f')} |"
        )
    risks = [r["risk"] for r in rows if r.get("risk")]
    if risks:
        out += ["", "### Risks", "", *[f"- {text}" for text in risks]]
    return "\n".join(out) + "\n"


def _f(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None else format(float(value), fmt)
