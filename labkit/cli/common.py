"""What every command shares: the ``--out`` and ``--json`` options, JSON on stdout, the progress bar.

Kept in one place so that each command spells its options the same way and
checks an output folder the same way: before any work starts, so that a bad
``--out`` costs the user one line, not a finished run lost at the last step.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from labkit.errors import ConfigError
from labkit.wire import jsonsafe

if TYPE_CHECKING:
    from labkit.cli.progress import ProgressBar
    from labkit.report import ReportPaths

DEFAULT_OUT = Path("results")


def out_option(help: str, default: Path | None = DEFAULT_OUT, *names: str) -> Any:
    """The ``--out`` option (``names`` adds short forms such as ``-o``)."""
    return typer.Option(default, *names, "--out", help=help)


def json_option(help: str) -> Any:
    """The ``--json`` option: the command prints only its JSON document on stdout."""
    return typer.Option(False, "--json", help=help)


def emit_json(data: dict[str, Any]) -> None:
    """One JSON document on stdout; progress and messages stay on stderr."""
    sys.stdout.write(jsonsafe.dumps(data, indent=2, default=str) + "\n")  # NaN/inf as null: strict JSON
    sys.stdout.flush()


def report_json(paths: ReportPaths) -> dict[str, Any]:
    """The report's part of a command's ``--json``: html, markdown and the recommendation (None without one)."""
    rec = paths.recommendation
    recommendation = (
        {
            "option": rec.option,
            "confidence": rec.confidence,
            "sentence": rec.sentence,
            "poll_interval_s": rec.poll_interval_s,
            # added: why that confidence, and the options table (every candidate against each requirement, its cost)
            "confidence_why": rec.confidence_why,
            "options": [_option_json(r) for r in rec.options],
        }
        if rec
        else None
    )
    # added: each candidate's prediction beside its measurement (``labkit decide --json`` prints its own rows under this key)
    predictions = [p.to_dict() for p in paths.predictions]
    return {"html": str(paths.html), "markdown": str(paths.markdown), "recommendation": recommendation, "predictions": predictions}


def _option_json(row: Any) -> dict[str, Any]:
    """One row of the options table for ``--json``: the candidate, its basis, verdicts, cost and why."""
    return {
        "option": row.option,
        "basis": row.basis,
        "run_id": row.run_id,
        "chosen": row.chosen,
        "meets_all": row.meets_all,
        "within_budget": row.within_budget,
        "why": row.why,
        "cells": [
            {"what": c.what, "verdict": c.verdict, "shown": c.shown, "value": c.value, "se": c.se, "cites": [e.cite() for e in c.evidence]}
            for c in (*row.hard, *row.cost)
        ],
    }


def echo_report(paths: ReportPaths) -> None:
    """Where a command wrote its report, and what it recommends, as aligned lines on stdout."""
    typer.echo(f"html:           {paths.html}")
    typer.echo(f"markdown:       {paths.markdown}")
    if paths.recommendation:
        typer.echo(f"recommendation: {paths.recommendation.option} ({paths.recommendation.confidence} confidence)")


def progress_bar() -> ProgressBar:
    """A progress bar on stderr (drawn only on a terminal), fed by the library's ``progress`` callbacks."""
    from labkit.cli.progress import ProgressBar

    return ProgressBar()


def writable_dir(path: Path, option: str = "--out") -> Path:
    """``path`` as a folder that exists and takes files; else a ConfigError naming ``option``.

    Creates the folder (and its parents) and writes and removes a probe file:
    permission bits alone do not tell (root may write anywhere, except where
    the file system refuses, as in /proc).
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".labkit-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(f"{option} {path}: cannot create or write the folder ({reason})") from None
    return path
