"""Issue 24, item 8: ``capacity-report`` refuses garbage in the history instead of turning it into an answer,
and no labkit JSON holds NaN or Infinity."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from labkit.cli.commands import main
from labkit.results.layout import write_json
from labkit.wire import jsonsafe

FIXTURES = Path(__file__).parent / "fixtures"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _results_with(tmp_path: Path, edit) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    lines = (FIXTURES / "polling_stats_history.csv").read_text().splitlines()
    (run / "locust_stats_history.csv").write_text("\n".join(edit(lines)) + "\n")
    return run


@pytest.mark.parametrize("value", ["nan", "inf", "-1e999", "fast"])
def test_a_non_finite_or_unparsable_value_is_refused_in_one_line(tmp_path: Path, capsys, value: str) -> None:
    def poison(lines: list[str]) -> list[str]:
        cells = lines[5].split(",")
        cells[13] = value  # the 99% column
        return [*lines[:5], ",".join(cells), *lines[6:]]

    run = _results_with(tmp_path, poison)
    code, out, err = run_cli(["capacity-report", str(run)], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "'99%'" in err and "not a finite number" in err and "line 6" in err, err
    assert not (run / "capacity.json").exists()


def test_a_header_only_history_says_what_is_missing(tmp_path: Path, capsys) -> None:
    run = _results_with(tmp_path, lambda lines: lines[:1])
    code, _, err = run_cli(["capacity-report", str(run)], capsys)
    assert code == 2 and "no rows" in err and "locust.log" not in err, err


def test_the_good_history_still_gives_strict_json(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(FIXTURES / "polling_stats_history.csv", run / "locust_stats_history.csv")
    code, _, err = run_cli(["capacity-report", str(run)], capsys)
    assert code == 0, err
    json.loads((run / "capacity.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in capacity.json"))


def test_json_writers_never_write_nan_or_infinity(tmp_path: Path) -> None:
    data = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float64("nan"), "d": np.float32(2.0), "e": (1, math.nan)}
    write_json(tmp_path / "x.json", data)
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": None, "d": 2.0, "e": [1, None]}
    assert json.loads(jsonsafe.dumps({"x": -math.inf, "y": np.float64("inf")})) == {"x": None, "y": None}
