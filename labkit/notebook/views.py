"""Tables and views the notebooks show: measured beside the model, projections labelled, security exchanges.

Pure functions of what the library returns (summaries, calibrations,
recommendations, HTTP responses); ``labkit.notebook`` re-exports them, so a
notebook calls ``nb.summary_frame(...)`` and never imports this module.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

# -- tables --------------------------------------------------------------------------------------------


def summary_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One run's summary as the table ``labkit compare`` prints: each style measured, the model beside."""
    from labkit.analysis.summary_table import ROWS

    columns: dict[str, list[Any]] = {}
    for style, data in summary["styles"].items():
        measured, predicted = [], []
        for _, path, model_key in ROWS:
            value: Any = data
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            measured.append(readable(value))
            predicted.append(readable(data.get("model", {}).get(model_key) if model_key else None))
        columns[f"{style} measured"] = measured
        columns[f"{style} model"] = predicted
    return pd.DataFrame(columns, index=[label for label, _, _ in ROWS], dtype=object)


def projection_frame(projection: Mapping[str, Any]) -> pd.DataFrame:
    """``calibration.project``'s answer as a table, one column per style; every number is a projection."""
    rows = {
        "requests per event": "requests_per_event",
        "requests/s": "requests_per_s",
        "deliveries/s": "events_per_s",
        "bandwidth (Gbit/s)": "bandwidth_gbit_s",
        "provider cores": "provider_cores",
        "provider servers": "provider_servers",
        "consumer cores (all consumers)": "consumer_cores",
    }
    styles = projection["styles"]
    data = {f"{style}: {out['variant']} (PROJECTION)": [readable(out.get(key)) for key in rows.values()] for style, out in styles.items()}
    return pd.DataFrame(data, index=list(rows))


def readable(value: Any) -> Any:
    """A number as a reader wants it: 1,234,567 rather than 1.235e+06, three significant digits below 100; None as blank."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def calibration_frame(calibration: Any) -> pd.DataFrame:
    """The fitted costs (``calibration.fit_costs``): one row per style and quantity, with the fit's notes."""
    rows = [
        {"style": style, "quantity": quantity, **{k: v for k, v in fit.to_dict().items() if k != "terms"}}
        for style, fits in calibration.fits.items()
        for quantity, fit in fits.items()
    ]
    return pd.DataFrame(rows).set_index(["style", "quantity"])


def recommendation_markdown(rec: Any, *, reasons: int = 6) -> Any:
    """A Recommendation (``labkit.report.decide``) as Markdown: the choice, why, how sure, what is open."""
    from IPython.display import Markdown

    lines = [f"### Recommendation: {rec.option}", "", rec.sentence, "", f"*Confidence: {rec.confidence}* ({rec.confidence_why})", ""]
    if rec.reasons:
        lines.append("**Why** (each reason cites a measured number):")
        for reason in rec.reasons[:reasons]:
            lines.append(f"- *{reason.factor}*: {reason.text}")
    if rec.rejected:
        lines += ["", "**Not chosen:**"]
        lines += [f"- {option}: {why}" for option, why in rec.rejected]
    if rec.gaps:
        lines += ["", "**Not covered by these runs** (and the run that would settle it):"]
        lines += [f"- {gap.what}: `{gap.command}`" for gap in rec.gaps]
    return Markdown("\n".join(lines))


# -- security: real HTTP against real servers ----------------------------------------------------


def webhook_message(event_id: int, payload: Mapping[str, Any] | None = None, event_type: str = "order.updated") -> bytes:
    """A webhook body exactly as the provider's dispatcher sends it (one event, full payload)."""
    import orjson

    from labkit.provider.dispatcher import webhook_body

    body = orjson.dumps(dict(payload or {"order": event_id, "status": "paid"}))
    return webhook_body([(event_id, event_type, time.time_ns(), body)], batch=False, thin=False)


def exchange(what: str, response: Any) -> dict[str, Any]:
    """One request and its answer, as a row of a table."""
    from labkit.report.sources import redact_text

    detail = redact_text(response.text)[:90] if response.content else ""  # a 201 shows a new subscription's secret
    row = {"request": what, "status": response.status_code, "answer": detail}
    if "retry-after" in response.headers:
        row["answer"] = f"Retry-After: {response.headers['retry-after']} s; {detail}"
    return row


def ssrf_verdicts(urls: Iterable[str], allowed: tuple[str, ...] = ()) -> pd.DataFrame:
    """``check_callback_url`` on each URL: allowed, or refused and why. Nothing is sent to them."""
    from labkit.provider.ssrf import check_callback_url

    rows = []
    for url in urls:
        try:
            check_callback_url(url, allowed)
            rows.append({"callback URL": url, "verdict": "allowed", "why": ""})
        except ValueError as exc:
            rows.append({"callback URL": url, "verdict": "REFUSED", "why": str(exc)})
    return pd.DataFrame(rows)


# -- the decision report's inputs --------------------------------------------------------------------

# What the earlier notebooks leave under results_root(), in the order a report reads best.
REPORT_INPUTS = ("nb01-latency", "nb02-wasted-polls", "nb02-variants", "nb03-consumers")


def report_results(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """The rows a report decides on (``labkit.report.sources.load_sources(paths).results``)."""
    from labkit.report.sources import load_sources

    return load_sources(paths).results


def show_report(html: str | os.PathLike[str], height: int = 700) -> Any:
    """The report's self-contained HTML in a frame, wherever JupyterLab was started (no server path needed)."""
    import html as html_lib

    from IPython.display import HTML

    page = Path(html).read_text(encoding="utf-8")
    frame = (
        f'<iframe srcdoc="{html_lib.escape(page, quote=True)}" style="width: 100%; height: {height}px; border: 1px solid #ccc"></iframe>'
    )
    return HTML(f"<div>{frame}</div>")  # a bare <iframe> makes IPython warn
