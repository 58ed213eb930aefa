"""``labkit bench --help`` names every benchmark ``--only`` accepts."""

from __future__ import annotations

import typer

from labkit.bench.suite import BENCHMARKS
from labkit.cli.app import app


def test_the_only_option_lists_every_benchmark() -> None:
    import labkit.cli.commands  # noqa: F401 - registers the commands on the app

    bench = typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]
    (only,) = [p for p in bench.params if "--only" in p.opts]
    listed = only.help.split(":", 1)[1].strip().split(",")
    assert listed == list(BENCHMARKS)
