"""``labkit notebooks [--quick] [--out DIR]``: execute every notebook; keep each as .ipynb and static HTML."""

from __future__ import annotations

from pathlib import Path

import typer

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, out_option, progress_bar, writable_dir
from labkit.errors import ConfigError, RunError

NOTEBOOKS_SCHEMA_VERSION = 1


@app.command("notebooks")
def notebooks_command(
    quick: bool = typer.Option(False, "--quick", help="small runs (LABKIT_QUICK=1): all six in minutes, noisy numbers"),
    out: Path = out_option("results root; notebooks go to OUT/notebooks/ (OUT/notebooks/quick/ with --quick)"),
    only: str | None = typer.Option(None, "--only", help="comma-separated notebook numbers or names, e.g. 01,02", show_default=False),
    as_json: bool = json_option("print only {schema_version, notebooks: [...]} on stdout"),
) -> None:
    """Execute every notebook headless; write each executed .ipynb and an HTML export to read without a kernel."""
    from labkit.notebook.runner import notebook_sources, run_notebooks

    names = tuple(n.strip() for n in (only or "").split(",") if n.strip())
    if only is not None and not names:  # `--only ''` would otherwise run every notebook
        raise ConfigError("--only: names no notebook; give numbers or names such as 01,02 (or leave --only out to run all)")
    notebook_sources(only=names)  # an unknown name is refused before anything runs
    folder = writable_dir(out) / "notebooks"
    if quick:
        folder = folder / "quick"
    with progress_bar() as bar:
        done = run_notebooks(writable_dir(folder), quick=quick, only=names, progress=bar.update, log=bar.log)
    if as_json:
        emit_json(
            {
                "schema_version": NOTEBOOKS_SCHEMA_VERSION,
                "quick": quick,
                "results_dir": str(folder),
                "notebooks": [
                    {"name": n.name, "ipynb": str(n.ipynb), "html": str(n.html), "seconds": round(n.seconds, 1), "error": n.error}
                    for n in done
                ],
            }
        )
    else:
        for n in done:
            typer.echo(f"{n.name:<34} {'FAILED ' + n.error if n.error else 'ok'}  {n.html}")
    failed = [n.name for n in done if n.error]
    if failed:
        raise RunError(f"{len(failed)} notebook(s) failed: {', '.join(failed)} (the executed copies show where)")
