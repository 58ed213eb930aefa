"""From Locust's stats history and the CPU samples to a capacity and what limited it.

Pure functions over files a run leaves behind, so the analysis can be re-run
and is tested on a committed fixture:

- ``<prefix>_stats_history.csv`` (Locust, ``--csv-full-history``): one row a
  second per stats entry, with cumulative counts and *windowed* percentiles
  (Locust's "current" percentiles cover about the last 10 s);
- ``resources.csv`` (``labkit.capacity.run``): CPU and RSS of every server and
  Locust process, once a second;
- ``<prefix>_lag_hdr.json`` (publish_fanout): per-second HdrHistograms of the
  delivery lag;
- ``<prefix>_latency*.hlog`` and ``<prefix>_latency.json``
  (``labkit.capacity.latency``): every request's latency, per second, exact and
  corrected for coordinated omission, merged from every worker. When they are
  there, a step's requests, failures, throughput and p99 come from them, and
  Locust's own numbers stay beside them (``p99_locust_ms``, ``rps_locust``).

A *step* is a run of at least ``MIN_STEP_ROWS`` history rows at one user
count. Its first ``settle_s`` seconds are left out; over the rest (the steady
part) the step's throughput is the slope of the cumulative request count over
time, its failure ratio the growth of failures over requests, and its p99
the windowed p99 at the step's last row, whose window is the steady part when
steps last 12 s or more (shorter steps also see the end of the step before).
For publish_fanout the p99 is the delivery lag's, exact from the HdrHistograms
of the steady part when they are there.

The capacity is the last step that met the SLO before the first that did
not. What limited it is judged at the first breaching step (or at the last
step when none breached):

- ``load generator CPU``: a Locust process at 90% of a core or more; Locust's
  own numbers are then suspect and the capacity is a lower bound;
- ``server CPU``: a server process at ``SERVER_CPU_SATURATED`` % of a core or
  more (a Python server is one thread; one core is its ceiling);
- ``latency``: the SLO was breached with neither saturated (queueing, I/O,
  locks, or a host shared with other work: the reason says so when the
  host's CPUs were ``HOST_CPU_BUSY`` % busy);
- ``max users`` / ``time limit``: no step breached; the capacity is at least
  the last step (a lower bound).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit.capacity.lag import LagHistograms, summary_ms
from labkit.capacity.latency import LatencyLog
from labkit.errors import ResultsError
from labkit.results.layout import read_versioned_json

SCHEMA_VERSION = 1
CAPACITY_JSON = "capacity.json"
HISTORY_CSV = "locust_stats_history.csv"  # Locust's --csv-full-history output, what every step is read from
MIN_STEP_ROWS = 3
LOAD_GENERATOR_CPU_SATURATED = 90.0  # Locust warns at 90 %
SERVER_CPU_SATURATED = 85.0  # "near 100 % of one core", with room for sampling noise on a shared host
HOST_CPU_BUSY = 85.0  # % of all cores: other work competes with the run
AGGREGATED = ("", "Aggregated")

LIMITS = ("server CPU", "load generator CPU", "latency", "max users", "time limit")


@dataclass(frozen=True)
class Slo:
    p99_ms: float
    max_failure_ratio: float = 0.01


@dataclass(frozen=True)
class Step:
    """A stretch of the run at one user count; times are unix seconds (Locust's rows)."""

    index: int
    users: int
    start: int
    end: int
    steady_start: float


# -- reading ------------------------------------------------------------------------------


def read_history(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Locust's ``*_stats_history.csv`` with numbers as numbers ("N/A" -> NaN) and Type as text."""
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such stats history file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable stats history ({exc.__class__.__name__})") from None
    needed = {"Timestamp", "User Count", "Type", "Name", "99%", "Total Request Count", "Total Failure Count"}
    missing = sorted(needed - set(df.columns))
    if missing:
        raise ResultsError(f"{path}: not a Locust stats history (no column {missing[0]!r})")
    if df.empty:
        raise ResultsError(f"{path}: a header and no rows: Locust wrote no statistics, so there are no steps to analyse")
    for col in df.columns:
        if col not in ("Type", "Name"):
            df[col] = _finite_column(df[col], path, col)
    df["Type"] = df["Type"].astype(str)
    df["Name"] = df["Name"].astype(str)
    return df


def _finite_column(raw: pd.Series, path: str | os.PathLike[str], col: str) -> pd.Series:
    """The column as numbers; "N/A" and "" (Locust's "no value yet") are NaN, anything else must be a finite number.

    ``nan``, ``inf`` or ``-1e999`` (which parses as -inf) would otherwise pass
    through every comparison and reach capacity.json as a confident answer.
    """
    numeric = pd.api.types.is_numeric_dtype(raw.dtype)
    missing = pd.Series(False, index=raw.index) if numeric else raw.astype(str).isin(["N/A", ""])
    num = pd.to_numeric(raw.mask(missing), errors="coerce")
    bad = ~missing & ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        shown = str(raw.iloc[row])[:40]
        raise ResultsError(f"{path}: line {row + 2}, column {col!r}: {shown!r} is not a finite number")
    return num


def read_resources(path: str | os.PathLike[str]) -> pd.DataFrame:
    cols = ["timestamp", "process", "role", "pid", "cpu_percent", "rss_bytes"]
    if not Path(path).exists():
        return pd.DataFrame(columns=cols)
    return pd.read_csv(path)


def metric_rows(history: pd.DataFrame, metric: tuple[str, str]) -> pd.DataFrame:
    kind, name = metric
    rows = history[(history["Name"] == name) & (history["Type"] == kind)] if kind else history[history["Name"] == name]
    if not kind and name == "Aggregated":
        rows = rows[rows["Type"].isin(["", "nan"])]
    return rows.sort_values("Timestamp", kind="stable").drop_duplicates("Timestamp", keep="last")


# -- steps --------------------------------------------------------------------------------


def find_steps(history: pd.DataFrame, settle_s: float = 2.0, min_rows: int = MIN_STEP_ROWS) -> list[Step]:
    """Runs of rows at one non-zero user count, in order; short runs (spawning) are dropped."""
    agg = metric_rows(history, AGGREGATED)
    steps: list[Step] = []
    run_users: int | None = None
    run_ts: list[float] = []
    for users, ts in zip(agg["User Count"].tolist(), agg["Timestamp"].tolist(), strict=True):
        if users != run_users:
            if run_users and len(run_ts) >= min_rows:
                steps.append(Step(len(steps), int(run_users), int(run_ts[0]), int(run_ts[-1]), run_ts[0] + settle_s))
            run_users, run_ts = users, []
        run_ts.append(ts)
    if run_users and len(run_ts) >= min_rows:
        steps.append(Step(len(steps), int(run_users), int(run_ts[0]), int(run_ts[-1]), run_ts[0] + settle_s))
    return steps


def _rate(rows: pd.DataFrame, col: str) -> float:
    """Growth per second of the cumulative ``col``: the least-squares slope over the rows.

    A fitted slope, not (last - first) / seconds: a local runner's counts grow
    every row, but rows are stamped with whole seconds; a distributed master's
    grow in jumps when workers report (every 3 s). Either way the end points
    alone can be a whole jump off, the slope through every row is not.
    """
    if len(rows) < 2:
        return math.nan
    ts = rows["Timestamp"].to_numpy(dtype=float)
    values = rows[col].to_numpy(dtype=float)
    if np.ptp(ts) == 0:
        return math.nan
    return float(np.polyfit(ts - ts[0], values, 1)[0])


def _growth(rows: pd.DataFrame, col: str) -> float:
    """Increase of the cumulative ``col`` from the first row to the last."""
    return float(rows[col].iloc[-1] - rows[col].iloc[0]) if len(rows) >= 2 else math.nan


def _mean_cpu(resources: pd.DataFrame, role: str, start: float, end: float) -> tuple[float, str | None]:
    """The busiest process of ``role`` in [start, end]: (mean CPU % of one core, its name)."""
    if resources.empty:
        return math.nan, None
    r = resources[(resources["role"] == role) & (resources["timestamp"] >= start) & (resources["timestamp"] <= end + 1)]
    if r.empty:
        return math.nan, None
    means = r.groupby("process")["cpu_percent"].mean()
    return float(means.max()), str(means.idxmax())


def step_table(
    history: pd.DataFrame,
    resources: pd.DataFrame,
    steps: list[Step],
    slo: Slo,
    *,
    slo_metric: tuple[str, str] = AGGREGATED,
    rate_metric: tuple[str, str] = AGGREGATED,
    lag: LagHistograms | None = None,
    latency: LatencyLog | None = None,
) -> pd.DataFrame:
    """One row per step: users, rps, failure ratio, p99, CPU of servers and load generator, SLO verdict.

    With ``latency`` (the exact request histograms), the step's p99 is their
    coordinated-omission-corrected p99 over the steady part, and Locust's
    rounded p99 stays beside it as ``p99_locust_ms``; with ``lag`` (publish_fanout)
    the SLO's p99 is the delivery lag's, exact.
    """
    agg = metric_rows(history, AGGREGATED)
    slo_rows = metric_rows(history, slo_metric)
    rate_rows = metric_rows(history, rate_metric)
    out = []
    for st in steps:

        def steady(df: pd.DataFrame, st: Step = st) -> pd.DataFrame:
            return df[(df["Timestamp"] >= st.steady_start) & (df["Timestamp"] <= st.end)]

        rps = _rate(steady(rate_rows), "Total Request Count")
        a = steady(agg)
        d_all, d_fail = _growth(a, "Total Request Count"), _growth(a, "Total Failure Count")
        s = steady(slo_rows)
        p99 = float(s["99%"].iloc[-1]) if len(s) and not math.isnan(s["99%"].iloc[-1]) else float(s["99%"].max()) if len(s) else math.nan
        row: dict[str, Any] = {
            "step": st.index + 1,
            "users": st.users,
            "start": st.start,
            "end": st.end,
            "steady_seconds": float(st.end - st.steady_start),
            "rps": rps,
            "requests": d_all,
            "failures": d_fail,
            "failure_ratio": d_fail / d_all if d_all and d_all > 0 else (0.0 if d_all == 0 else math.nan),
            "p99_ms": p99,
            "p99_source": "locust",
        }
        if latency is not None:
            row.update(exact_request_columns(latency, st))
            if slo_metric == AGGREGATED and row["requests_p99_ms"] is not None:
                judge_exactly(row, st)
        if lag is not None:
            precise = summary_ms(lag.window(st.steady_start, st.end))
            row["lag_count"] = precise["count"]
            row["lag_p50_ms"] = precise["p50"]
            row["lag_p99_ms"] = precise["p99"]
            if precise["p99"] is not None:
                row["p99_locust_ms"] = p99
                row["p99_ms"] = row["p99_exact_ms"] = precise["p99"]
                row["p99_source"] = "hdrhistogram"
        server_cpu, server = _mean_cpu(resources, "server", st.steady_start, st.end)
        lg_cpu, lg = _mean_cpu(resources, "load_generator", st.steady_start, st.end)
        host_cpu, _ = _mean_cpu(resources, "host", st.steady_start, st.end)
        row.update(
            server_cpu_percent=server_cpu,
            server_process=server,
            load_generator_cpu_percent=lg_cpu,
            load_generator_process=lg,
            host_cpu_percent=host_cpu,
        )
        row["met_slo"] = meets(row, slo)
        out.append(row)
    return pd.DataFrame(out)


def exact_request_columns(latency: LatencyLog, st: Step) -> dict[str, Any]:
    """A step's exact request latency (steady part): corrected and raw p99, and the requests sent late or dropped."""
    # A history row stamped T counts the requests completed before T: the step's rows from its steady
    # start to its end hold the requests completed in the seconds [steady_start, end - 1].
    w = latency.window(st.steady_start, st.end - 1)
    return {
        "requests_recorded": w.requests,
        "requests_p99_ms": summary_ms(w.corrected)["p99"],
        "requests_p99_uncorrected_ms": summary_ms(w.raw)["p99"],
        "requests_failed": w.failures,
        "late_requests": w.late,
        "dropped_requests": w.dropped,
    }


def judge_exactly(row: dict[str, Any], st: Step) -> None:
    """Every request, exactly: the verdict's numbers; Locust's (rounded, reported every 3 s by workers) beside them."""
    row.update(p99_locust_ms=row["p99_ms"], rps_locust=row["rps"], requests_locust=row["requests"], failures_locust=row["failures"])
    seconds = st.end - math.ceil(st.steady_start)
    n, fails = row["requests_recorded"], row["requests_failed"]
    row.update(
        p99_ms=row["requests_p99_ms"],
        p99_exact_ms=row["requests_p99_ms"],
        p99_source="hdrhistogram",
        rps=n / seconds if seconds > 0 else math.nan,
        requests=float(n),
        failures=float(fails),
        failure_ratio=fails / n if n else 0.0,
    )


def meets(step: Any, slo: Slo) -> bool:
    """A step (a row of ``step_table``) met the SLO: requests done, p99 and failure ratio within it."""
    requests, p99, ratio = (float(step[k]) for k in ("requests", "p99_ms", "failure_ratio"))
    return bool(requests > 0 and not math.isnan(p99) and p99 <= slo.p99_ms and ratio <= slo.max_failure_ratio)


@dataclass(frozen=True)
class Capacity:
    users: int
    rps: float
    p99_ms: float | None
    step: int | None  # 1-based; None when no step met the SLO
    limited_by: str
    lower_bound: bool
    load_generator_saturated: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_capacity(
    steps: pd.DataFrame,
    slo: Slo,
    *,
    max_users: int | None = None,
    server_cpu_saturated: float = SERVER_CPU_SATURATED,
    load_generator_cpu_saturated: float = LOAD_GENERATOR_CPU_SATURATED,
) -> Capacity:
    """The highest step that met the SLO before the first breach, and what limited it."""
    if steps.empty:
        raise ResultsError("the run has no complete step to judge (did Locust run long enough?)")
    met = [meets(row, slo) for _, row in steps.iterrows()]
    first_breach = next((i for i, ok in enumerate(met) if not ok), None)
    held = (first_breach if first_breach is not None else len(met)) - 1
    at = first_breach if first_breach is not None else len(met) - 1
    deciding = steps.iloc[at]
    lg_saturated = bool((steps["load_generator_cpu_percent"].iloc[: at + 1] >= load_generator_cpu_saturated).any())
    lg_at_decision = _ge(deciding["load_generator_cpu_percent"], load_generator_cpu_saturated)
    server_at_decision = _ge(deciding["server_cpu_percent"], server_cpu_saturated)
    if first_breach is not None:
        why = _breach_reason(deciding, slo)
        if lg_at_decision:
            limited_by = "load generator CPU"
        elif server_at_decision:
            limited_by = "server CPU"
        else:
            limited_by = "latency"
        reason = f"step {int(deciding['step'])} ({int(deciding['users'])} users) breached the SLO: {why}"
    else:
        if lg_at_decision:
            limited_by = "load generator CPU"
        elif max_users is not None and int(deciding["users"]) >= max_users:
            limited_by = "max users"
        else:
            limited_by = "time limit"
        reason = f"no step breached the SLO up to {int(deciding['users'])} users"
    if lg_at_decision:
        reason += (
            f"; Locust itself was at {deciding['load_generator_cpu_percent']:.0f}% CPU, so this is a lower bound"
            " on the server's capacity, not the capacity (add --workers)"
        )
    elif server_at_decision:
        reason += f"; {deciding['server_process']} at {deciding['server_cpu_percent']:.0f}% of one core"
    if limited_by == "latency" and _ge(deciding.get("host_cpu_percent"), HOST_CPU_BUSY):
        reason += (
            f"; the host's CPUs were {deciding['host_cpu_percent']:.0f}% busy, so other processes competed"
            " for them: re-run on a quiet machine before trusting the number"
        )
    if held < 0:
        return Capacity(0, 0.0, None, None, limited_by, limited_by in ("load generator CPU",), lg_saturated, reason)
    best = steps.iloc[held]
    return Capacity(
        users=int(best["users"]),
        rps=round(float(best["rps"]), 3) if not math.isnan(best["rps"]) else 0.0,
        p99_ms=_num(best["p99_ms"]),
        step=int(best["step"]),
        limited_by=limited_by,
        lower_bound=limited_by in ("load generator CPU", "max users", "time limit"),
        load_generator_saturated=lg_saturated,
        reason=reason,
    )


def find_limit(steps: pd.DataFrame, search: dict[str, Any], *, server_cpu_saturated: float = SERVER_CPU_SATURATED) -> Capacity:
    """A search's capacity: the users that held below the lowest that breached (the outcome its shape wrote).

    The steps of a search go up and down (a climb, then bisection), so the first
    breach is not the end; the bracket is. What limited it is read off the step
    that breached: Locust out of CPU with no worker left to add (a lower bound),
    the server near a full core, or latency alone; with no breach, the most
    users or the time limit (a lower bound too).
    """
    if steps.empty:
        raise ResultsError("the run has no complete step to judge (did Locust run long enough?)")
    held, failed = search.get("held"), search.get("failed")

    def row_at(load: int | None) -> pd.Series | None:
        rows = steps[steps["users"] == load] if load is not None else steps.iloc[0:0]
        return rows.iloc[-1] if len(rows) else None

    best, breach = row_at(held["load"] if held else None), row_at(failed["load"] if failed else None)
    if failed is None:
        limited_by = "max users" if search.get("limited_by") == "maximum" else "time limit"
        reason = f"no step breached the SLO up to {held['load'] if held else 0} users ({search.get('stop_reason')})"
    elif failed.get("clients_saturated"):
        limited_by = "load generator CPU"
        reason = f"{failed['load']} users breached the SLO ({failed.get('why')}) with Locust out of CPU and no worker left to add"
    else:
        limited_by = "server CPU" if breach is not None and _ge(breach["server_cpu_percent"], server_cpu_saturated) else "latency"
        reason = f"{failed['load']} users breached the SLO: {failed.get('why')}"
        if limited_by == "latency" and breach is not None and _num(breach.get("host_cpu_percent")) is not None:
            reason += (
                f"; neither the server ({_num(breach['server_cpu_percent'])} % of a core) nor Locust"
                f" ({_num(breach['load_generator_cpu_percent'])} %) was out of CPU, and the host's CPUs were"
                f" {_num(breach['host_cpu_percent'])} % busy (other work competes for them)"
            )
    if held is not None and failed is not None:
        reason = f"{held['load']} users held ({held.get('why')}); " + reason
        if not search.get("within_tolerance"):
            reason += f"; the bracket is wider than {search.get('tolerance', 0.1):.0%} ({search.get('stop_reason')})"
    lg_saturated = bool((steps["load_generator_cpu_percent"] >= LOAD_GENERATOR_CPU_SATURATED).any())
    lower_bound = limited_by in ("load generator CPU", "max users", "time limit")
    if best is None:
        return Capacity(0, 0.0, None, None, limited_by, lower_bound and held is not None, lg_saturated, reason)
    return Capacity(
        users=int(best["users"]),
        rps=round(float(best["rps"]), 3) if not math.isnan(best["rps"]) else 0.0,
        p99_ms=_num(best["p99_ms"]),
        step=int(best["step"]),
        limited_by=limited_by,
        lower_bound=lower_bound,
        load_generator_saturated=lg_saturated,
        reason=reason,
    )


def cpu_at(steps: pd.DataFrame, users: int | None) -> dict[str, float | None]:
    """The server's and Locust's CPU (% of one core: the busiest process of each) in the step at ``users``."""
    rows = steps[steps["users"] == users] if users is not None else steps.iloc[0:0]
    if not len(rows):
        return {"server_percent": None, "load_generator_percent": None}
    row = rows.iloc[-1]
    return {"server_percent": _num(row["server_cpu_percent"]), "load_generator_percent": _num(row["load_generator_cpu_percent"])}


def _ge(value: Any, limit: float) -> bool:
    try:
        return not math.isnan(float(value)) and float(value) >= limit
    except (TypeError, ValueError):
        return False


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else round(v, 3)


def _breach_reason(row: pd.Series, slo: Slo) -> str:
    if not row["requests"] or row["requests"] <= 0:
        return "no requests completed"
    if row["failure_ratio"] > slo.max_failure_ratio:
        return f"failure ratio {row['failure_ratio']:.1%} > {slo.max_failure_ratio:.1%}"
    if math.isnan(row["p99_ms"]):
        return "no p99 measured"
    return f"p99 {row['p99_ms']:g} ms > {slo.p99_ms:g} ms"


# -- capacity.json back as a table -------------------------------------------------------------


def read_capacity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A capacity.json, checked: readable, an object, a known schema_version."""
    return read_versioned_json(Path(path), CAPACITY_JSON, "capacity results file")


def load_capacity(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Every capacity run at or below ``path``: one row per step, run-level columns beside.

    Run-level columns: run_id, scenario, results_dir, slo.p99_ms, slo.max_failure_ratio,
    capacity.users, capacity.rps, limited_by, lower_bound, settings.*; step columns as in
    ``step_table`` plus ``is_capacity`` (the step reported as the capacity).
    """
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob(CAPACITY_JSON) if p.is_file())
        if not files:
            raise ResultsError(f"{path}: holds no {CAPACITY_JSON}")
    else:
        raise ResultsError(f"{path}: no such capacity results directory")
    rows = []
    for f in files:
        data = read_capacity(f)
        base = {
            "run_id": data.get("run_id"),
            "scenario": data.get("scenario"),
            "results_dir": str(f.parent),
            "slo.p99_ms": (data.get("slo") or {}).get("p99_ms"),
            "slo.max_failure_ratio": (data.get("slo") or {}).get("max_failure_ratio"),
            "capacity.users": (data.get("capacity") or {}).get("users"),
            "capacity.rps": (data.get("capacity") or {}).get("rps"),
            "limited_by": data.get("limited_by"),
            "lower_bound": data.get("lower_bound"),
        }
        for k, v in (data.get("settings") or {}).items():
            base[f"settings.{k}"] = tuple(v) if isinstance(v, list) else v
        cap_step = (data.get("capacity") or {}).get("step")
        for step in data.get("steps") or []:
            rows.append({**base, **step, "is_capacity": step.get("step") == cap_step})
    return pd.DataFrame(rows)
