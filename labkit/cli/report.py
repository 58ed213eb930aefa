"""``labkit report RESULTS... [--requirements FILE] [-o OUT] [--json]``: a decision report from results.

Parses options and calls ``labkit.report.write_report``; missing results, an
unknown schema or a bad requirements file is one line on stderr and exit 2
(``labkit.cli.commands`` prints every ``LabkitError`` so); an ``-o`` folder that
cannot be created or written is refused before any work.
"""

from __future__ import annotations

from pathlib import Path

import typer

from labkit.cli.app import app
from labkit.cli.common import echo_report, emit_json, json_option, out_option, report_json, writable_dir

REPORT_SCHEMA_VERSION = 1


def default_out_dir(results: list[Path]) -> Path:
    """Beside the results: ``<results>/report`` (for a summary.json, beside its run)."""
    first = results[0]
    base = first.parent if first.is_file() else first
    return base / "report"


@app.command("report")
def report_command(
    results: list[Path] = typer.Argument(
        ..., help="results directories or summary.json files (a compare run, a sweep, or several)", show_default=False
    ),
    requirements: Path | None = typer.Option(
        None, "--requirements", help="requirements TOML, e.g. scenarios/requirements/payments-provider.toml"
    ),
    out: Path | None = out_option("where report.html, report.md and figures/ go (default: RESULTS/report)", None, "-o"),
    as_json: bool = json_option("print only {schema_version, html, markdown, recommendation} on stdout"),
) -> None:
    """Write a decision report (self-contained HTML and a Markdown twin) from measured results."""
    if out is not None:
        writable_dir(out, "-o/--out")
    from labkit.report import write_report

    paths = write_report(results, out_dir=out or default_out_dir(results), requirements=requirements)
    if as_json:
        emit_json({"schema_version": REPORT_SCHEMA_VERSION, **report_json(paths)})
        return
    echo_report(paths)
