"""``labkit calibrate [--json]``: measure this machine's loopback costs per style again (the models' base)."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, progress_bar

SCHEMA_VERSION = 1


def calibration_document(cal: Any, path: Any) -> dict[str, Any]:
    """The ``--json`` document: the calibration file's content, where it is, and each cost in milliseconds."""
    return {
        **cal.as_dict(),
        "schema_version": SCHEMA_VERSION,
        "path": str(path),
        "source": cal.source,
        "costs_ms": {style: {f"{k.removesuffix('_s')}_ms": v * 1000 for k, v in costs.items()} for style, costs in cal.costs.items()},
    }


@app.command()
def calibrate(as_json: bool = json_option("print only the calibration JSON on stdout")) -> None:
    """Measure this machine's loopback costs per style (a few seconds each) and cache them as the models' base."""
    from labkit.lab.calibrate import arecalibrate

    with progress_bar() as bar:
        cal, path = asyncio.run(arecalibrate(bar.update))
    doc = calibration_document(cal, path)
    if as_json:
        emit_json(doc)
        return
    load = cal.measured_with.get("load_average")
    typer.echo(f"{cal.source}: {path}" + (f" (load average {load:.2f} while measuring)" if load is not None else ""))
    for style, costs in doc["costs_ms"].items():
        typer.echo(f"  {style:<12} " + ", ".join(f"{k.removesuffix('_ms')} {v:.3f} ms" for k, v in costs.items()))
