"""Issue 16, command line: every bad input is refused in one line (exit 2) before any work starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from labkit.cli.compare import build_run_settings
from labkit.config import PollerSettings, RunSettings, WorkloadSettings
from labkit.errors import ConfigError, ResultsError
from labkit.results.layout import load_results, read_summary
from labkit.runs.experiments import load_experiment, parse_experiment
from tests.helpers.cli import Ran, labkit

REPO = Path(__file__).resolve().parents[2]
MAX_FILE_BYTES = 1024 * 1024
SUMMARY = REPO / "tests" / "fixtures" / "report" / "compare" / "20250301T120000000000Z-s1" / "summary.json"


def one_line_exit_2(proc: Ran) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# -- 1: rate x duration against the event cap, before anything is generated -----------------------


def test_a_workload_over_the_event_cap_is_refused_from_rate_and_duration() -> None:
    with pytest.raises(ValidationError, match="max_events=200000"):
        WorkloadSettings(rate_per_s=100_000, duration_s=86_400)
    with pytest.raises(ValidationError, match="max_events=50"):
        WorkloadSettings(arrival="constant", rate_per_s=10, duration_s=6, max_events=50)
    assert WorkloadSettings(rate_per_s=10, duration_s=5, max_events=50).max_events == 50


def test_the_cli_names_both_options_for_an_oversized_workload() -> None:
    with pytest.raises(ConfigError) as err:
        build_run_settings({"workload": {"rate_per_s": 100_000.0, "duration_s": 86_400.0}})
    assert "--rate" in str(err.value) and "--duration" in str(err.value)
    line = one_line_exit_2(labkit("compare", "--rate", "100000", "--duration", "86400", "--no-report"))
    assert "--rate" in line and "--duration" in line and "max_events" in line


def test_an_experiment_file_over_the_event_cap_names_its_keys() -> None:
    with pytest.raises(ConfigError, match="rate_per_s x duration_s"):
        parse_experiment({"experiment": {"name": "big"}, "workload": {"rate_per_s": 1000.0, "duration_s": 3600.0}})


# -- 3: experiment files are regular files under a size cap ----------------------------------------


def test_a_device_is_not_an_experiment_file() -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        load_experiment("/dev/zero")
    line = one_line_exit_2(labkit("sweep", "/dev/zero"))
    assert "/dev/zero" in line and "regular file" in line


def test_an_oversized_experiment_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="at most 1048576 bytes"):
        load_experiment(big)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "exp.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_experiment(fifo)


# -- 4: an experiment's name is one safe path component --------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a\\b", "../up", "ok\n", "", "x" * 101])
def test_unsafe_experiment_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="letters, digits, '_', '.' or '-', not starting with '.'"):
        parse_experiment({"experiment": {"name": name}})


@pytest.mark.parametrize("name", ["..", ".", "a/b"])
def test_run_settings_refuse_unsafe_experiment_names(name: str) -> None:
    with pytest.raises(ValidationError):
        RunSettings(experiment=name)


def test_safe_names_still_load() -> None:
    assert parse_experiment({"experiment": {"name": "v1.2_final-run"}}).name == "v1.2_final-run"


def test_dotdot_from_a_file_is_refused_on_the_command_line(tmp_path: Path) -> None:
    exp = tmp_path / "escape.toml"
    exp.write_text('[experiment]\nname = ".."\n[workload]\nduration_s = 1\n')
    line = one_line_exit_2(labkit("sweep", str(exp), "--out", str(tmp_path / "out")))
    assert "experiment.name" in line and "letters, digits" in line
    assert not (tmp_path / "out").exists()


# -- 5: summaries are checked against their schema_version -----------------------------------------


def _broken_summary(tmp_path: Path, **changes: object) -> Path:
    run = tmp_path / "run"
    shutil.copytree(SUMMARY.parent, run)
    data = json.loads(SUMMARY.read_text())
    data.update(changes)
    (run / "summary.json").write_text(json.dumps(data))
    return run


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"styles": ["webhook", "polling"]}, "'styles'"),
        ({"styles": {"webhook": 3}}, "'styles.webhook'"),
        ({"workload": "poisson"}, "'workload'"),
        ({"settings": []}, "'settings'"),
        ({"run_id": 7}, "'run_id'"),
    ],
)
def test_a_summary_off_its_schema_names_the_file_and_field(tmp_path: Path, changes: dict[str, object], field: str) -> None:
    run = _broken_summary(tmp_path, **changes)
    with pytest.raises(ResultsError, match=field) as err:
        read_summary(run)
    assert str(run / "summary.json") in str(err.value)
    with pytest.raises(ResultsError, match=field):
        load_results(run)


def test_report_on_a_summary_whose_styles_is_a_list_is_one_line(tmp_path: Path) -> None:
    run = _broken_summary(tmp_path, styles=["webhook"])
    line = one_line_exit_2(labkit("report", str(run), "-o", str(tmp_path / "rep")))
    assert "summary.json" in line and "'styles'" in line


def test_the_committed_summaries_pass_the_check() -> None:
    for p in (REPO / "tests" / "fixtures" / "report").rglob("summary.json"):
        assert read_summary(p)["styles"]


# -- 7: a floor on the poll interval ---------------------------------------------------------------


def test_poll_interval_has_a_floor_of_one_millisecond() -> None:
    with pytest.raises(ConfigError, match=r"--poll-interval: .*0\.001"):
        build_run_settings({"poll_interval_s": 1e-9})
    assert build_run_settings({"poll_interval_s": 0.001}).poll_interval_s == 0.001
    with pytest.raises(ValidationError, match="0.001"):
        PollerSettings(base_url="http://127.0.0.1:9", interval_s=1e-9)
    line = one_line_exit_2(labkit("compare", "--poll-interval", "1e-9", "--no-report"))
    assert "--poll-interval" in line and "0.001" in line
