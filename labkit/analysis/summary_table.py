"""The side-by-side table ``labkit compare`` prints: each style, measured and model.

Two columns per style do not fit a terminal once there are more than two or
three styles: rich then squeezed the columns and cut numbers ("1,23…"). The
styles are instead split over as many tables as needed, each as wide as the
console allows, every one with the row labels; a cell that still does not
fit (a console narrower than one style) folds onto a second line, never cut.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from labkit.results import columns as cols


def format_cell(value: Any, digits: int = 2) -> str:
    """A value as the compare table shows it: thousands separated, booleans as yes/no, "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2e}"
    return str(value)


# (label, measured key path, model key or None)
ROWS: list[tuple[str, str, str | None]] = [
    ("events published", "published", None),
    ("delivered (unique)", "delivered", None),
    ("lost", "lost", None),
    ("duplicates seen", "duplicates", None),
    ("latency mean (ms)", cols.LATENCY_MEAN, "latency_mean_ms"),
    ("latency p50 (ms)", cols.LATENCY_P50, "latency_p50_ms"),
    ("latency p99 (ms)", cols.LATENCY_P99, "latency_p99_ms"),
    ("latency max (ms)", cols.LATENCY_MAX, None),
    ("requests", "requests", None),
    ("requests / event", "requests_per_event", "requests_per_event"),
    ("empty poll ratio", "empty_poll_ratio", "empty_poll_ratio"),
    ("bytes on the wire", "bytes_total", None),
    ("bytes / event", "bytes_per_event", None),
    ("provider CPU (s)", "provider_cpu_s", None),
    ("consumer CPU (s)", "consumer_cpu_s", None),
]


# Shown when a run's audience is per-consumer or topics: the heaviest and lightest tenth of consumers, and the
# spread over consumers, beside the audience's model (``labkit.model.audience``; its figures are a model).
AUDIENCE_ROWS: list[tuple[str, str, str | None]] = [
    ("misdelivered", "audience.misdelivered", None),
    ("deliveries / event", "", "audience.deliveries_per_event"),
    ("requests / event (audience)", "requests_per_event", "audience.requests_per_event"),
    ("empty poll ratio (audience)", "audience.empty_poll_ratio", "audience.empty_poll_ratio"),
    ("deliveries / consumer", "audience.deliveries_per_consumer", None),
    ("polls / consumer", "audience.polls_per_consumer", None),
    ("heaviest 10 %: latency p50 (ms)", "audience.heaviest_decile.latency_ms.p50", None),
    ("heaviest 10 %: latency p99 (ms)", "audience.heaviest_decile.latency_ms.p99", None),
    ("heaviest 10 %: empty poll ratio", "audience.heaviest_decile.empty_poll_ratio", "audience.heaviest_decile.empty_poll_ratio"),
    ("lightest 10 %: latency p50 (ms)", "audience.lightest_decile.latency_ms.p50", None),
    ("lightest 10 %: latency p99 (ms)", "audience.lightest_decile.latency_ms.p99", None),
    ("lightest 10 %: empty poll ratio", "audience.lightest_decile.empty_poll_ratio", "audience.lightest_decile.empty_poll_ratio"),
]


def _cell(value: Any) -> str:
    """A cell; a spread over consumers reads min / median / max."""
    if isinstance(value, dict) and set(value) == {"min", "median", "max"}:
        return " / ".join(format_cell(value[k]) for k in ("min", "median", "max"))
    return format_cell(value)


def _get(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)  # type: ignore[assignment]
    return data


def summary_table(summary: dict[str, Any], only: list[str] | None = None, titled: bool = True) -> Table:
    """The table of ``only`` these styles (all by default); ``titled``: with the run's title line."""
    styles = {name: data for name, data in summary["styles"].items() if only is None or name in only}
    wl = summary["workload"]
    title = (
        f"run {summary['run_id']}: {wl['events']} events, {wl['arrival']} at {wl['rate_per_s']}/s for {wl['duration_s']} s, "
        f"{wl['payload_bytes']} B payloads, lambda*T = {wl.get('lambda_t', 0):.2f}"
    )
    table = Table(title=title if titled else None, title_justify="left")
    table.add_column("", overflow="fold")
    for style in styles:
        table.add_column(f"{style}\nmeasured", justify="right", overflow="fold")
        table.add_column(f"{style}\nmodel", justify="right", style="dim", overflow="fold")
    rows = list(ROWS)
    if any("heaviest_decile" in (data.get("audience") or {}) for data in styles.values()):
        rows += AUDIENCE_ROWS
    for label, path, model_key in rows:
        cells = []
        for data in styles.values():
            cells.append(_cell(_get(data, path)) if path else "")
            cells.append(_cell(_get(data.get("model") or {}, model_key)) if model_key else "")
        table.add_row(label, *cells)
    return table


def summary_tables(summary: dict[str, Any], console: Console) -> list[Table]:
    """The table split by styles into as few tables as fit ``console.width`` (see the module doc)."""
    names = list(summary["styles"])
    natural = console.options.update_width(100_000)  # measured unconstrained: what each table needs, not what it is given
    for per in range(len(names), 0, -1):
        groups = [names[i : i + per] for i in range(0, len(names), per)]
        tables = [summary_table(summary, group, titled=i == 0) for i, group in enumerate(groups)]
        widest = max(Measurement.get(console, natural, t).maximum for t in tables)
        if widest <= console.width or per == 1:
            return tables
    return [summary_table(summary)]  # pragma: no cover - per == 1 always returns


def render_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    for table in summary_tables(summary, console):
        console.print(table)
    console.print(f"results: {summary['results_dir']}  (model columns are the closed forms, not measurements)")
    audience = (summary.get("workload") or {}).get("audience") or {}
    if audience.get("kind", "broadcast") != "broadcast":
        console.print(
            f"audience: {audience['kind']}, consumer skew {audience.get('consumer_skew')}"
            + (
                f", {audience.get('topics')} topics, {audience.get('subscriptions')} followed by each consumer"
                if audience.get("topics")
                else ""
            )
        )
