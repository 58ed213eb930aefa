"""The table ``labkit bench`` prints: each pair, its ratio, and the target it meets or misses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table


def _f(value: Any, fmt: str = ",.0f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


Row = tuple[str, str, str, str, str]


def rows(summary: dict[str, Any]) -> list[Row]:
    """(pair, labkit, limit, ratio, target verdict) for each measured pair."""
    b, r, t = summary.get("benchmarks", {}), summary.get("ratios", {}), summary.get("targets", {})

    def verdict(name: str) -> str:
        tg = t.get(name)
        if not tg:
            return ""
        return f"{tg['op']} {tg['target']:g}: {'pass' if tg['pass'] else 'MISS'}"

    return _provider_rows(b, r, verdict) + _consumer_rows(b, r, verdict)


def _provider_rows(b: dict[str, Any], r: dict[str, Any], verdict: Callable[[str], str]) -> list[Row]:
    """The provider's pairs: the poll endpoint, the dispatcher and the webhook latency floor."""
    out: list[Row] = []
    if "poll_endpoint" in b:
        for k, label in (("304", "304"), ("200", "200"), ("304_per_key", "304, per-key feeds")):
            p = b["poll_endpoint"].get(f"status_{k}")
            if p is None:  # a file of an older labkit: no per-key case
                continue
            out.append(
                (
                    f"GET /events {label} (req/s)",
                    _f(p["provider"]["rps"]),
                    _f(p["bare"]["rps"]),
                    _f(r.get(f"poll_{k}"), ".2f"),
                    verdict(f"poll_{k}") if k != "200" else "",
                )
            )
    if "dispatcher" in b:
        d = b["dispatcher"]
        out.append(
            (
                "webhook deliveries/s",
                _f(d["deliveries_per_s"]),
                _f(d["ceiling"]["rps"]),
                _f(r.get("dispatcher"), ".2f"),
                verdict("dispatcher"),
            )
        )
    if "latency_floor" in b:
        lf = b["latency_floor"]
        e2e, bare = lf["webhook_e2e_ms"], lf["bare_rtt_ms"]
        out.append(
            (
                f"webhook e2e p50 (ms) at {lf['rate_per_s']:g}/s",
                _f(e2e.get("p50"), ".2f"),
                _f(bare.get("p50"), ".2f"),
                _f(r.get("webhook_p50"), ".2f"),
                verdict("webhook_p50"),
            )
        )
        out.append(("webhook e2e p99 (ms)", _f(e2e.get("p99"), ".2f"), _f(bare.get("p99"), ".2f"), _f(r.get("webhook_p99"), ".2f"), ""))
    return out


def _consumer_rows(b: dict[str, Any], r: dict[str, Any], verdict: Callable[[str], str]) -> list[Row]:
    """The consumers' pairs: the poller fleet, the receiver's ingest and the SSE fan-out."""
    out: list[Row] = []
    if "poller_fleet" in b:
        f = b["poller_fleet"]
        best = f["best"]
        out.append(
            (
                f"pollers/process at {f['interval_s']:g} s",
                _f(f["pollers_per_process"]),
                f"p99 late {_f(best['lateness_ms'].get('p99'), '.1f')} ms",
                "",
                verdict("fleet_pollers"),
            )
        )
        out.append(
            (
                "achieved/intended poll rate",
                _f(best["achieved_polls_per_s"], ",.1f"),
                _f(best["intended_polls_per_s"], ",.1f"),
                _f(r.get("fleet_rate"), ".3f"),
                verdict("fleet_rate"),
            )
        )
    if "receiver_ingest" in b:
        i = b["receiver_ingest"]
        out.append(
            (
                "receiver verified/unverified req/s",
                _f(i["verified"]["rps"]),
                _f(i["unverified"]["rps"]),
                _f(r.get("receiver_verify"), ".2f"),
                verdict("receiver_verify"),
            )
        )
    if "sse_fanout" in b:
        f = b["sse_fanout"]
        label = f"SSE frames/s to {f['streams']} streams"
        out.append(
            (label, _f(f["provider"]["frames_per_s"]), _f(f["bare"]["frames_per_s"]), _f(r.get("sse_fanout"), ".2f"), verdict("sse_fanout"))
        )
    if "per_consumer_fanout" in b:
        f = b["per_consumer_fanout"]
        label = f"provider CPU us/frame to {f['streams']} streams, per-consumer/broadcast"
        cells = (_f(f["per_consumer"]["server_cpu_us_per_frame"], ".1f"), _f(f["broadcast"]["server_cpu_us_per_frame"], ".1f"))
        out.append((label, *cells, _f(r.get("per_consumer_fanout"), ".2f"), verdict("per_consumer_fanout")))
    if "proxy_cost" in b:
        out.extend(_proxy_rows(b["proxy_cost"], r, verdict))
    if "process_scaling" in b:
        out.extend(_scaling_rows(b["process_scaling"], r, verdict))
    return out


def _proxy_rows(pc: dict[str, Any], r: dict[str, Any], verdict: Callable[[str], str]) -> list[Row]:
    """The proxy and the relays, each against direct; then the proxy against the bare relay (the floor), judged."""
    direct = _f((pc.get("direct_e2e_ms") or {}).get("p50"), ".2f")
    relays = pc.get("relays") or {}
    out: list[Row] = [
        (
            "webhook e2e p50 (ms) through the zero-delay proxy",
            _f((pc.get("proxied_e2e_ms") or {}).get("p50"), ".2f"),
            direct,
            _f(r.get("proxy_p50"), ".2f"),
            "",
        )
    ]
    for name, label in (("relay", "the bare relay"), ("socat", "socat")):
        relay = relays.get(name) or {}
        if relay.get("installed"):
            out.append(
                (
                    f"  ... through {label} (floor)",
                    _f((relay.get("e2e_ms") or {}).get("p50"), ".2f"),
                    direct,
                    _f(relay.get("ratio_p50"), ".2f"),
                    "",
                )
            )
    ci = pc.get("ratio_to_relay_p50_interval")
    ratio = _f(r.get("proxy_vs_relay_p50"), ".3f") + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
    out.append(("proxy p50 / bare relay p50, median of rounds [95 %]", "", "", ratio, verdict("proxy_vs_relay_p50")))
    if r.get("proxy_vs_socat_p50") is not None:
        out.append(("proxy p50 / socat p50, per round", "", "", _f(r.get("proxy_vs_socat_p50"), ".3f"), ""))
    return out


def _scaling_rows(ps: dict[str, Any], r: dict[str, Any], verdict: Callable[[str], str]) -> list[Row]:
    """Each scaling measure twice: the raw N / (N x 1) ratio, then the work per consumer CPU-second; the target sits on the one judged."""
    n, by_cpu = ps["processes"], ps.get("judged") == "cpu_efficiency"
    measures = (
        (
            "pollers",
            f"polls/s, {n} processes vs 1 ({ps['cores']} cores)",
            "achieved_polls_per_s",
            "polls per fleet CPU-s",
            "polls_per_cpu_s",
        ),
        ("receiver", f"receiver req/s, {n} workers vs 1", "rps", "req per receiver CPU-s", "deliveries_per_cpu_s"),
    )
    out: list[Row] = []
    for key, label, rate, cpu_label, per_cpu in measures:
        m, target = ps[key], f"scaling_{key}"
        judged = verdict(target)
        out.append((label, _f(m["n"].get(rate)), _f(m["one"].get(rate)), _f(r.get(target), ".2f"), "judged below" if by_cpu else judged))
        out.append(
            (
                f"  {cpu_label}",
                _f(m["n"].get(per_cpu)),
                _f(m["one"].get(per_cpu)),
                _f(r.get(f"{target}_cpu"), ".2f"),
                judged if by_cpu else "",
            )
        )
    return out


def render(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    n = summary.get("noise", {})
    table = Table(
        title=f"labkit bench {summary['run_id']} ({summary['mode']}, {summary['load_tool']})",
        title_justify="left",
    )
    for name, justify in (("pair", "left"), ("labkit", "right"), ("limit", "right"), ("ratio", "right"), ("target", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows(summary):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"machine: {summary['environment'].get('cpu_count')} CPUs, load {n.get('loadavg_start')} -> {n.get('loadavg_end')}, "
        f"others used {_f(100 * (n.get('other_cpu_share') or 0), '.0f')}% of it, worst repetition CV {_f(100 * (n.get('max_cv') or 0), '.0f')}%"
    )
    console.print(f"results: {summary.get('path')}  (ratios compare across runs; absolute numbers on a shared machine do not)")
