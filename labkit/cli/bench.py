"""``labkit bench [--quick] [--json] [--out DIR] [--only NAMES]``: the lab against this machine's limits."""

from __future__ import annotations

from pathlib import Path

import typer

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, out_option, progress_bar, writable_dir


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="fewer, shorter repetitions (about five minutes here)"),
    as_json: bool = json_option("print only the results JSON on stdout"),
    out: Path = out_option("results root; the file goes to OUT/bench/<run-id>.json"),
    only: str = typer.Option(
        "",
        "--only",
        help="comma-separated: poll_endpoint,dispatcher,latency_floor,poller_fleet,receiver_ingest,proxy_cost,sse_fanout,per_consumer_fanout,process_scaling",
    ),
) -> None:
    """Benchmark labkit's servers and clients against bare ones on the same machine (ratios)."""
    from labkit.bench import run_bench
    from labkit.bench.table import render

    names = tuple(n.strip() for n in only.split(",") if n.strip())
    writable_dir(out)
    with progress_bar() as bar:
        result = run_bench(quick=quick, out_dir=out, only=names, progress=bar.update)
    if as_json:
        emit_json(result.summary)
    else:
        render(result.summary)
