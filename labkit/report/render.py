"""Writes the decision report: one self-contained HTML file and a Markdown twin.

    out_dir/report.html        every figure inline as a base64 PNG data URI; no
                               stylesheet, script, font or image is fetched
    out_dir/report.md          the same content; its figures are the files below
    out_dir/figures/*.png

Figures come from ``labkit.analysis.figures`` and the projection from
``labkit.analysis.calibration``; either may be missing or fail, and the report then
says "figure unavailable: <reason>" (or why the projection could not be
computed) instead of failing.
"""

from __future__ import annotations

import base64
import io
import os
import platform
import statistics
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from labkit._version import __version__
from labkit.errors import ResultsError
from labkit.report.decide import Recommendation, decide
from labkit.report.observations import fmt, num, round_sig
from labkit.report.predicted import Predicted, find_predictions
from labkit.report.predicted import beside as predicted_beside
from labkit.report.predicted import risks as prediction_risks
from labkit.report.predicted import table as predicted_table
from labkit.report.projection import Projection, compute_projection, error_reason, shows_interval
from labkit.report.requirements import Requirements, default_requirements, load_requirements
from labkit.report.scale import Headline, budget_notes, headlines, projected_rows, scale_notes
from labkit.report.sources import Sources, load_sources, redact_text
from labkit.report.terms import CLAIMS, FACTORS, FALLBACK
from labkit.results import columns as cols

TEMPLATES = Path(__file__).with_name("templates")
FIGURE_DPI = 110


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went, and what it recommends."""

    html: Path
    markdown: Path
    recommendation: Recommendation | None = None
    headlines: tuple[Headline, ...] = ()
    predictions: tuple[Predicted, ...] = ()  # each candidate's model figures beside its run (none without a predictions.json)


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    caption: str
    draw: Callable[[Sources], Any]


@dataclass(frozen=True)
class RenderedFigure:
    name: str
    title: str
    caption: str
    png: bytes | None
    unavailable: str | None

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png or b"").decode("ascii")

    @property
    def filename(self) -> str:
        return f"figures/{self.name}.png"

    @property
    def wide(self) -> bool:
        """Much wider than tall (several panels side by side): gets the page's full width."""
        if not self.png or len(self.png) < 24:
            return False
        width, height = int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")
        return height > 0 and width / height >= 2.0


def _latency_cdf(s: Sources) -> Any:
    from labkit.analysis.figures import latency_cdf

    if s.events is None:
        raise ResultsError(s.events_error or "no events were recorded")
    if s.events.empty:
        raise ResultsError("no events.parquet beside the summaries")
    return latency_cdf(s.events)


def _summary_bars(s: Sources) -> Any:
    from labkit.analysis.figures import summary_bars

    return summary_bars(s.results)


def _requests_vs_lt(s: Sources) -> Any:
    from labkit.analysis.figures import cost_vs_lambda_t

    return cost_vs_lambda_t(s.results, metric="requests_per_event")


def _bytes_vs_lt(s: Sources) -> Any:
    from labkit.analysis.figures import cost_vs_lambda_t

    return cost_vs_lambda_t(s.results, metric="bytes_per_event")


def _empty_polls(s: Sources) -> Any:
    from labkit.analysis.figures import empty_polls_vs_lambda_t

    return empty_polls_vs_lambda_t(s.results)


def _latency_vs_interval(s: Sources) -> Any:
    from labkit.analysis.figures import latency_vs_interval

    return latency_vs_interval(s.results)


def _streams(s: Sources) -> Any:
    from labkit.report.stream_figure import streams_figure

    return streams_figure(s.results)


def _cpu_vs_consumers(s: Sources) -> Any:
    from labkit.analysis.figures import cpu_vs_consumers

    return cpu_vs_consumers(s.results)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "latency_cdf", "Latency per style", "Cumulative distribution of event-to-consumer latency, measured per event.", _latency_cdf
    ),
    FigureSpec("summary_bars", "Measured summary", "Latency, requests, bytes and CPU per event for each style, measured.", _summary_bars),
    FigureSpec(
        "requests_per_event",
        "Requests per event against lambda T",
        "Measured points with the model curve; the styles cross where polling's 1/(lambda T) meets push's one request per event.",
        _requests_vs_lt,
    ),
    FigureSpec(
        "bytes_per_event",
        "Bytes per event against lambda T",
        "Bytes on the wire per event and consumer, both directions, headers included.",
        _bytes_vs_lt,
    ),
    FigureSpec(
        "empty_polls", "Empty polls against lambda T", "Share of polls that found nothing, against the model's e^(-lambda T).", _empty_polls
    ),
    FigureSpec(
        "latency_vs_interval",
        "Polling latency against the poll interval",
        "Measured polling latency against T, with the model T/2 + RTT.",
        _latency_vs_interval,
    ),
    FigureSpec(
        "cpu_vs_consumers",
        "CPU per event against consumers",
        "Provider and consumer CPU-seconds per event as consumers grow.",
        _cpu_vs_consumers,
    ),
    FigureSpec(
        "streams",
        "Held streams against webhooks and long polling",
        "One run's latency p99, bytes per event, provider CPU per delivered event, provider memory per held connection "
        "(RSS above the run's provider that held none) and reconnects plus backpressure drops, per style, measured.",
        _streams,
    ),
)


def render_figures(sources: Sources, specs: Iterable[FigureSpec] = FIGURES) -> list[RenderedFigure]:
    """Each figure as PNG bytes, or the reason it is unavailable; never raises for a figure."""
    out = []
    for spec in specs:
        try:
            with warnings.catch_warnings():  # layout advice from matplotlib is not the reader's concern
                warnings.simplefilter("ignore")
                fig = spec.draw(sources)
            if fig is None or not hasattr(fig, "savefig"):
                raise TypeError(f"{spec.name} returned {type(fig).__name__}, not a matplotlib Figure")
            buf = io.BytesIO()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight", facecolor="white")
            finally:
                _close(fig)
            png = buf.getvalue()
            if not png.startswith(b"\x89PNG"):
                raise ValueError("the figure did not render as PNG")
            out.append(RenderedFigure(spec.name, spec.title, spec.caption, png, None))
        except Exception as exc:  # any failure of another module's figure costs that figure only
            out.append(RenderedFigure(spec.name, spec.title, spec.caption, None, error_reason(exc)))
    return out


def _close(fig: Any) -> None:
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: S110 - a figure that cannot be closed is garbage-collected later
        pass


# --------------------------------------------------------------------------- measurements


# (heading, measured column, model column, scale, unit)
MEASURES: tuple[tuple[str, str, str | None, float, str], ...] = (
    ("latency p50", cols.LATENCY_P50, cols.MODEL_LATENCY_P50, 1.0, "ms"),
    ("latency p99", cols.LATENCY_P99, cols.MODEL_LATENCY_P99, 1.0, "ms"),
    ("requests per event", "requests_per_event", cols.MODEL_REQUESTS_PER_EVENT, 1.0, ""),
    ("bytes per event", "bytes_per_event", cols.MODEL_BYTES_PER_EVENT, 1.0, "B"),
    ("empty polls", "empty_poll_ratio", cols.MODEL_EMPTY_POLL_RATIO, 100.0, "%"),
    ("CPU per event", "cpu_s_per_event", cols.MODEL_CPU_S_PER_EVENT, 1000.0, "ms"),
    ("lost", "lost", None, 1.0, ""),
    ("duplicates", "duplicates", None, 1.0, ""),
    ("reconnects", "reconnects", None, 1.0, ""),
    ("backpressure drops", "dropped_backpressure", None, 1.0, ""),
    ("endpoints disabled", "disabled_endpoints", None, 1.0, ""),
)


def model_columns(sources: Sources) -> dict[str, bool]:
    """Which measures get a model column: those the model predicts for at least one row."""
    obs = sources.observations
    return {h: mc is not None and any(o.get(mc) is not None for o in obs) for h, _, mc, _, _ in MEASURES}


def measurement_rows(sources: Sources) -> list[dict[str, Any]]:
    has_model = model_columns(sources)
    rows = []
    for o in sources.observations:
        cells = []
        for heading, col, model_col, scale, unit in MEASURES:
            m = o.get(col)
            mo = o.get(model_col) if model_col else None
            cells.append(
                {
                    "heading": heading,
                    "measured": _cell(m, scale),
                    "model": _cell(mo, scale) if has_model[heading] else "",
                    "has_model": has_model[heading],
                    "unit": unit,
                }
            )
        point = o.row.get("point")
        label = str(point) if point and point != o.run_id else o.run_id
        rows.append(
            {
                "run_id": o.run_id,
                "label": label,
                "style": o.style,
                "variant": o.variant,
                "rate": fmt(o.rate),
                "interval": fmt(o.interval_s) if shows_interval(o.style) else "",
                "lambda_t": fmt(o.lambda_t),
                "consumers": fmt(o.consumers),
                "cells": cells,
            }
        )
    return rows


def _cell(value: float | None, scale: float) -> str:
    if value is None:
        return "\u2014"
    v = value * scale
    if abs(v) < 1e-3 and v != 0:
        return "<0.001" if v > 0 else fmt(v)
    return fmt(round_sig(v, 3) if not float(v).is_integer() else v)


# --------------------------------------------------------------------------- the options table


def options_table(rec: Recommendation) -> dict[str, Any]:
    """The options table: one row per candidate, one column per hard requirement and per cost, each cell traced.

    Returns ``columns`` (hard requirements, then costs, in first-seen order) and
    ``rows``: option, basis, chosen, why, and per column a cell with its
    verdict, what is shown and the citations (run / style / column = value).
    """
    hard: list[str] = []
    cost: list[str] = []
    for row in rec.options:
        hard += [c.what for c in row.hard if c.what not in hard]
        cost += [c.what for c in row.cost if c.what not in cost]
    rows = []
    for row in rec.options:
        cells = {c.what: c for c in (*row.hard, *row.cost)}
        out = []
        for col in hard + cost:
            c = cells.get(col)
            out.append(
                {"verdict": c.verdict, "shown": c.shown, "cites": [e.cite() for e in c.evidence]}
                if c is not None
                else {"verdict": "", "shown": "\u2014", "cites": []}
            )
        cites = list(dict.fromkeys(c for cell in out for c in cell["cites"]))
        rows.append(
            {
                "option": row.option,
                "basis": row.basis,
                "chosen": row.chosen,
                "why": row.why,
                "run_id": row.run_id,
                "cells": out,
                "cites": cites,
            }
        )
    return {"hard": hard, "cost": cost, "columns": hard + cost, "rows": rows, "tie_note": rec.tie_note}


# --------------------------------------------------------------------------- the report


def _resolve_requirements(requirements: Requirements | str | os.PathLike[str] | None, sources: Sources) -> tuple[Requirements, str, bool]:
    """The requirements, where they came from, and whether they are the default profile."""
    if isinstance(requirements, Requirements):
        return requirements, "given by the caller", False
    if requirements is not None:
        return load_requirements(requirements), str(requirements), False
    rates = [v for v in (num(x) for x in sources.results.get(cols.RATE, [])) if v]
    consumers = [v for v in (num(x) for x in sources.results.get("consumers", [])) if v]
    req = default_requirements(statistics.median(rates) if rates else None, int(max(consumers)) if consumers else None)
    return req, "default profile (no --requirements file given)", True


def build_context(
    sources: Sources,
    req: Requirements,
    rec: Recommendation,
    *,
    requirements_source: str,
    requirements_path: str | None,
    is_default: bool,
    figures: list[RenderedFigure],
    projection: Projection,
    heads: list[Headline] | None = None,
    predicted: list[Predicted] | None = None,
) -> dict[str, Any]:
    by_factor = {f: [r for r in rec.reasons if r.factor == f] for f in FACTORS}
    envs: dict[str, dict[str, Any]] = {}
    for run in sources.runs:
        env = dict(run.environment)
        key = repr(sorted((k, str(v)) for k, v in env.items()))
        entry = envs.setdefault(key, {"env": env, "runs": []})
        entry["runs"].append(run.run_id)
    sweeps = {name: runs for name, runs in sources.experiments.items() if name != "compare"}
    return {
        "title": f"Webhooks or polling? Decision report: {req.name}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "labkit_version": __version__,
        "report_python": platform.python_version(),
        "paths": [str(p) for p in sources.paths],
        "req": req,
        "req_rows": [(k, fmt(v) if not isinstance(v, str) else (v or "\u2014")) for k, v in req.as_table()],
        "requirements_source": requirements_source,
        "requirements_path": requirements_path,
        "is_default": is_default,
        "rec": rec,
        "options": options_table(rec),
        "op": {k: fmt(round_sig(v, 3) if isinstance(v, float) and v > 0 else v) for k, v in rec.operating_point.items()},
        "factors": FACTORS,
        "claims": CLAIMS,
        "by_factor": by_factor,
        "measures": [m[0] for m in MEASURES],
        "measure_units": {m[0]: m[4] for m in MEASURES},
        "measure_models": model_columns(sources),
        "rows": measurement_rows(sources),
        "figures": figures,
        "projection": projection,
        "headlines": heads if heads is not None else headlines(sources.observations, req, projected_rows(projection)),
        "scale_notes": scale_notes(sources.observations),
        "budget_notes": budget_notes(sources.observations),
        "runs": sources.runs,
        "sweeps": sweeps,
        "environments": list(envs.values()),
        "events_error": sources.events_error,
        "fallback": FALLBACK,
        "nruns": len(sources.runs),
        # predicted (before the runs, by labkit decide), then measured; a disagreement beyond its bound is a risk
        "predicted": predicted_table(predicted or []),
        "prediction_risks": prediction_risks(predicted or [], rec),
    }


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _md(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _greek(value: Any) -> str:
    return str(value).replace("lambda T", "\u03bbT")


def render(context: dict[str, Any]) -> tuple[str, str]:
    """The HTML and the Markdown text of a report."""
    env = _env()
    env.filters["md"] = _md
    env.filters["fmt"] = fmt
    env.filters["greek"] = _greek
    html = env.get_template("report.html").render(**context)
    md = env.get_template("report.md").render(**context)
    return redact_text(html), redact_text(md)


def write_report(
    results_paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    requirements: Requirements | str | os.PathLike[str] | None = None,
) -> ReportPaths:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/report.md`` (+ ``figures/*.png``).

    ``requirements`` is a ``Requirements``, a path to a requirements TOML
    file, or ``None`` for the default profile (which the report says it used).
    """
    if isinstance(results_paths, (str, os.PathLike)):  # one path, not an iterable of characters
        results_paths = [results_paths]
    sources = load_sources(results_paths)
    req, req_source, is_default = _resolve_requirements(requirements, sources)
    rec = decide(req, sources.observations)
    figures = render_figures(sources)
    projection = compute_projection(sources, req, rec)
    heads = headlines(sources.observations, req, projected_rows(projection))
    predicted = predicted_beside(find_predictions(sources.paths), sources.observations)
    context = build_context(
        sources,
        req,
        rec,
        requirements_source=req_source,
        requirements_path=None if isinstance(requirements, Requirements) or requirements is None else str(requirements),
        is_default=is_default,
        figures=figures,
        projection=projection,
        heads=heads,
        predicted=predicted,
    )
    html, md = render(context)
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for f in figures:
        target = out / f.filename
        if f.png:
            target.write_bytes(f.png)
        elif target.exists():
            target.unlink()  # a stale PNG from an earlier report must not pass for this one's
    html_path, md_path = out / "report.html", out / "report.md"
    _atomic_write(html_path, html)
    _atomic_write(md_path, md)
    return ReportPaths(html=html_path, markdown=md_path, recommendation=rec, headlines=tuple(heads), predictions=tuple(predicted))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["ReportPaths", "render_figures", "write_report"]
