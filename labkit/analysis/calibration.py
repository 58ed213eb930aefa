"""The calibrated cost model: fit what a request and an event cost, then project.

From measured runs (rows of ``load_results``), for each style and each cost
(provider CPU-seconds, consumer CPU-seconds, bytes on the wire) it fits

    cost = per_request * requests + per_event * deliveries
           [+ per_published * published events] [+ per_run]

by least squares over the runs (coefficients held >= 0). ``deliveries``
counts an event once for each consumer that got it; ``published`` counts it
once (the provider accepts and stores it once, however many consumers
follow). CPU leaves out what a process had spent on start-up before the
first event was published; ``per_run`` catches the start-up a reading
missed. ``project`` scales the fitted costs to a load this machine cannot
run (100,000 consumers at 50 events/s) and labels the answer a projection,
with the runs and the fit it came from.

Runs can only separate costs that vary independently across them: every
push run without batching has one request per delivery, every run with one
consumer one delivery per published event. A cost the runs cannot tell
apart is folded into the per-delivery cost, and ``note`` says so and which
sweep would separate it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labkit.errors import ResultsError
from labkit.styles.base import unit as style_unit

# quantity -> (column of the run's total, column of the start-up share to leave out, unit)
QUANTITIES: dict[str, tuple[str, str | None, str]] = {
    "provider_cpu_s": ("provider_cpu_s", "provider_cpu_start_s", "CPU-seconds"),
    "consumer_cpu_s": ("consumer_cpu_s", "consumer_cpu_start_s", "CPU-seconds"),
    "bytes": ("bytes_total", None, "bytes"),
}
# Normalised columns closer than this to parallel cannot be told apart.
CONDITION_TOLERANCE = 0.01

_TERM_NAMES = {"requests": "per_request", "events": "per_event", "published": "per_published", "run": "per_run"}
# When the runs cannot separate every cost, drop (fold into per_event) the first of these that helps.
_DROP_ORDER = ("published", "run", "requests")

_FOLDED_REQUESTS = (
    "requests and deliveries were proportional in these runs, so the per-request cost is folded into the "
    "per-event cost; vary requests per event (lambda T, batching) to separate them"
)
_FOLDED_PUBLISHED = (
    "every run delivered each event to the same number of consumers, so accepting a published event is "
    "folded into the per-delivery cost (a projection to many consumers overstates it); sweep the number "
    "of consumers to separate them"
)


@dataclass(frozen=True)
class CostFit:
    """One fitted cost of one style: what a request, a delivery, a published event and a run add."""

    style: str
    quantity: str
    unit: str
    per_request: float
    per_event: float
    per_published: float
    per_run: float
    r2: float
    runs: int
    terms: tuple[str, ...]
    note: str = ""

    @property
    def exact(self) -> bool:
        """As many runs as costs (or fewer): the fit passes through every point, so it predicts nothing
        and its R^2 of 1 says nothing; figures and reports show the measurements instead."""
        return self.runs <= len(self.terms)

    def predict(self, requests: float, events: float, published: float = 0.0, runs: float = 0.0) -> float:
        return self.per_request * requests + self.per_event * events + self.per_published * published + self.per_run * runs

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "per_request": self.per_request,
            "per_event": self.per_event,
            "per_published": self.per_published,
            "per_run": self.per_run,
            "r2": self.r2,
            "runs": self.runs,
            "terms": list(self.terms),
            "note": self.note,
            "exact": self.exact,
        }


@dataclass(frozen=True)
class Calibration:
    """Fitted costs per style and quantity, and the runs they came from."""

    fits: dict[str, dict[str, CostFit]]
    source_runs: tuple[str, ...]
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def styles(self) -> tuple[str, ...]:
        return tuple(self.fits)

    def fit(self, style: str, quantity: str) -> CostFit:
        try:
            return self.fits[style][quantity]
        except KeyError:
            raise KeyError(f"no {quantity} fit for {style}; calibrated: {sorted(self.fits)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "calibration",
            "source_runs": list(self.source_runs),
            "machine": dict(self.machine),
            "fits": {s: {q: f.to_dict() for q, f in qs.items()} for s, qs in self.fits.items()},
        }


def fit_costs(results_df: pd.DataFrame, *, per_run: bool | None = None) -> Calibration:
    """Fit per-request, per-delivery and per-published-event costs for each style over the runs.

    ``per_run`` adds a fixed cost per run. By default CPU gets one (a start-up
    reading misses what a consumer spends before it is first measured, such
    as the poller's imports) and bytes do not. Raises ``ResultsError`` when
    the frame holds nothing to fit.
    """
    needed = {"style", "requests", "delivered"}
    missing = needed - set(results_df.columns)
    if results_df.empty or missing:
        raise ResultsError(f"cannot calibrate: the results lack {', '.join(sorted(missing)) or 'rows'}")
    fits: dict[str, dict[str, CostFit]] = {}
    for style, part in results_df.groupby("style", sort=False):
        published = part["published"] if "published" in part.columns else part["delivered"]
        style_fits: dict[str, CostFit] = {}
        for quantity, (column, start_column, unit) in QUANTITIES.items():
            if column not in part.columns:
                continue
            y = part[column].astype(float)
            if start_column and start_column in part.columns:
                y = y - part[start_column].fillna(0.0).astype(float)
            data = pd.DataFrame(
                {
                    "requests": part["requests"].astype(float),
                    "events": part["delivered"].astype(float),
                    "published": published.astype(float),
                    "y": y,
                }
            ).dropna()
            data = data[data["events"] > 0]
            if data.empty:
                continue
            with_run = unit != "bytes" if per_run is None else per_run
            style_fits[quantity] = _fit(str(style), quantity, unit, data, with_run)
        if style_fits:
            fits[str(style)] = style_fits
    if not fits:
        raise ResultsError("cannot calibrate: no run delivered any event")
    runs = tuple(str(r) for r in dict.fromkeys(results_df["run_id"].dropna())) if "run_id" in results_df.columns else ()
    machine = {}
    for key in ("env.cpu_model", "env.cpu_count", "env.labkit"):
        if key in results_df.columns and results_df[key].notna().any():
            machine[key.split(".", 1)[1]] = _plain(results_df[key].dropna().iloc[0])
    return Calibration(fits=fits, source_runs=runs, machine=machine)


def _candidates(wanted: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Subsets of ``wanted`` that keep the per-event term: largest first, then by what they drop."""
    optional = [t for t in wanted if t != "events"]
    subsets = []
    for k in range(len(optional), -1, -1):
        for keep in itertools.combinations(optional, k):
            dropped = [t for t in optional if t not in keep]
            cost = sorted(_DROP_ORDER.index(t) for t in dropped)
            subsets.append((-k, cost, tuple(t for t in wanted if t == "events" or t in keep)))
    return [terms for _, _, terms in sorted(subsets)]


def _fit(style: str, quantity: str, unit: str, data: pd.DataFrame, per_run: bool) -> CostFit:
    columns = {
        "requests": data["requests"].to_numpy(),
        "events": data["events"].to_numpy(),
        "published": data["published"].to_numpy(),
        "run": np.ones(len(data)),
    }
    wanted = ("requests", "events", "published") + (("run",) if per_run else ())
    y = data["y"].to_numpy()
    for terms in _candidates(wanted):
        x = np.column_stack([columns[t] for t in terms])
        if len(data) >= len(terms) and _well_conditioned(x):
            break
    values, clamped = _nonnegative_lstsq(x, y, terms)
    fitted = x @ np.array([values[t] for t in terms])
    ss_res = float(np.sum((y - fitted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot > 0:
        r2 = 1.0 - ss_res / ss_tot
    else:
        r2 = 1.0 if ss_res <= 1e-12 * max(1.0, float(np.sum(y**2))) else 0.0
    notes = []
    if clamped:
        notes.append(f"a negative fit for {', '.join(clamped)} was held at zero (a cost is never negative)")
    if "requests" not in terms:
        if not _well_conditioned(np.column_stack([columns["requests"], columns["events"]])):
            notes.append(_FOLDED_REQUESTS)
        elif "run" in terms:
            notes.append("requests were about the same in every run, so their cost is folded into the per-run cost")
        else:
            notes.append("too few runs to separate per-request from per-event costs; both are in the per-event cost")
    if "published" not in terms:
        if not _well_conditioned(np.column_stack([columns["published"], columns["events"]])):
            notes.append(_FOLDED_PUBLISHED)
        else:
            notes.append("too few runs to separate published events from deliveries; both are in the per-event cost")
    if per_run and "run" not in terms:
        notes.append("no per-run cost could be told apart from the others with these runs")
    if len(data) == len(terms):
        notes.append(f"{len(data)} run(s) for {len(terms)} cost(s): an exact fit, so R^2 = 1 says nothing")
    return CostFit(
        style=style,
        quantity=quantity,
        unit=unit,
        per_request=values.get("requests", 0.0),
        per_event=values.get("events", 0.0),
        per_published=values.get("published", 0.0),
        per_run=values.get("run", 0.0),
        r2=r2,
        runs=len(data),
        terms=tuple(_TERM_NAMES[t] for t in terms),
        note="; ".join(notes),
    )


def _nonnegative_lstsq(x: np.ndarray, y: np.ndarray, terms: tuple[str, ...]) -> tuple[dict[str, float], list[str]]:
    """Least squares with every coefficient >= 0: with four terms at most, try each subset."""
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    if np.all(coef >= 0):
        return dict(zip(terms, (float(c) for c in coef))), []
    best: tuple[float, dict[str, float]] | None = None
    for k in range(len(terms) - 1, 0, -1):
        for keep in itertools.combinations(range(len(terms)), k):
            sub, *_ = np.linalg.lstsq(x[:, keep], y, rcond=None)
            if np.any(sub < 0):
                continue
            res = float(np.sum((y - x[:, keep] @ sub) ** 2))
            if best is None or res < best[0] - 1e-12:
                best = (res, {terms[i]: float(c) for i, c in zip(keep, sub)})
    values = best[1] if best else {}
    return {t: values.get(t, 0.0) for t in terms}, [_TERM_NAMES[t] for t in terms if t not in values]


def _well_conditioned(x: np.ndarray) -> bool:
    norms = np.linalg.norm(x, axis=0)
    if np.any(norms == 0):
        return False
    s = np.linalg.svd(x / norms, compute_uv=False)
    return bool(s[-1] / s[0] > CONDITION_TOLERANCE)


def project(
    calibration: Calibration,
    consumers: int = 100_000,
    rate_per_s: float = 50.0,
    poll_interval_s: float = 1.0,
    *,
    batch: int = 1,
    retries_per_event: float = 0.0,
    long_poll_wait_s: float = 0.0,
    page_limit: int | None = 100,
    target_utilisation: float = 0.7,
    cores_per_server: int | None = None,
) -> dict[str, Any]:
    """Cores, servers and bandwidth each calibrated style needs at a scale this machine cannot run.

    ``consumers`` each follow one stream of ``rate_per_s`` events. Requests
    per event come from the model (1/B for push, 1/(lambda T) or the
    long-poll form for polling); costs from the calibration's fits. Start-up
    costs (``per_run``) are left out: they do not grow with load.
    """
    if consumers < 1 or rate_per_s <= 0 or poll_interval_s <= 0:
        raise ValueError("consumers, rate and poll interval must be positive")
    if not 0 < target_utilisation <= 1:
        raise ValueError("target_utilisation is a fraction in (0, 1]")
    per_server = cores_per_server or int(calibration.machine.get("cpu_count") or 8)
    deliveries_per_s = consumers * rate_per_s
    styles: dict[str, Any] = {}
    for style in calibration.styles:
        rpe, variant = style_unit(style).projected_requests_per_event(
            rate_per_s, poll_interval_s, batch, retries_per_event, long_poll_wait_s, page_limit
        )
        requests_per_s = deliveries_per_s * rpe
        out: dict[str, Any] = {
            "kind": "projection",
            "variant": variant,
            "requests_per_event": rpe,
            "requests_per_s": requests_per_s,
            "events_per_s": deliveries_per_s,
            "published_per_s": rate_per_s,
        }
        notes = []
        for quantity, fit in calibration.fits[style].items():
            per_s = fit.predict(requests_per_s, deliveries_per_s, rate_per_s)
            if fit.note:
                notes.append(f"{quantity}: {fit.note}")
            if quantity == "bytes":
                out["bytes_per_event"] = per_s / deliveries_per_s
                out["bandwidth_bytes_per_s"] = per_s
                out["bandwidth_gbit_s"] = per_s * 8 / 1e9
            else:
                side = quantity.split("_", 1)[0]
                out[f"{side}_cpu_s_per_s"] = per_s
                out[f"{side}_cores"] = per_s / target_utilisation
                out[f"{side}_servers"] = max(1, math.ceil(per_s / target_utilisation / per_server))
        out["notes"] = notes
        styles[style] = out
    return {
        "kind": "projection",
        "assumes": (
            "costs grow linearly with requests, deliveries and published events as fitted on the calibration runs, "
            f"on machines like the calibration's ({calibration.machine.get('cpu_model', 'unknown CPU')}), at "
            f"{target_utilisation:.0%} CPU utilisation and {per_server} cores per server; start-up costs left out; "
            "requests per event from the model"
        ),
        "inputs": {
            "consumers": consumers,
            "rate_per_s": rate_per_s,
            "poll_interval_s": poll_interval_s,
            "lambda_t": rate_per_s * poll_interval_s,
            "batch": batch,
            "retries_per_event": retries_per_event,
            "long_poll_wait_s": long_poll_wait_s,
            "target_utilisation": target_utilisation,
            "cores_per_server": per_server,
        },
        "calibration": calibration.to_dict(),
        "styles": styles,
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
