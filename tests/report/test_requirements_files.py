"""Issue 24, items 4 to 6: requirements files are read with limits, must state the decision's numbers, and a
rate the lab cannot run is refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.errors import ConfigError
from labkit.report.requirements import load_requirements
from labkit.runs.decision_runs import plan_decision
from tests.helpers.cli import Ran, labkit

REPO = Path(__file__).resolve().parents[2]
COMPARE_RUN = REPO / "tests" / "fixtures" / "report" / "compare" / "20250301T120000000000Z-s1"
STATED = "target_latency_p99_ms = 500\nevent_rate_per_s = 2\nconsumers = 10\n"


def one_line_exit_2(proc: Ran) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "req.fifo"
    os.mkfifo(path)
    return path


def test_a_device_a_fifo_a_folder_and_a_huge_file_are_refused(tmp_path: Path, fifo: Path) -> None:
    huge = tmp_path / "huge.toml"
    huge.write_text("# x\n" * 100_000)
    for path, says in (
        (Path("/dev/zero"), "not a regular file"),
        (fifo, "not a regular file"),
        (tmp_path, "is a folder"),
        (huge, "at most"),
    ):
        with pytest.raises(ConfigError, match=says):
            load_requirements(path)


@pytest.mark.parametrize("command", ["decide", "report"])
def test_the_commands_refuse_dev_zero_and_a_fifo_in_one_line(tmp_path: Path, fifo: Path, command: str) -> None:
    for path in ("/dev/zero", str(fifo)):
        args = ["decide", path, "--out", str(tmp_path)] if command == "decide" else ["report", str(COMPARE_RUN), "--requirements", path]
        assert "not a regular file" in one_line_exit_2(labkit(*args, cwd=tmp_path))


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", 'name = "x"\nconsumers = 3\n'])
def test_a_file_without_the_decisions_numbers_is_refused_naming_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_requirements(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)) and "target_latency_p99_ms" in msg and "event_rate_per_s" in msg
    line = one_line_exit_2(labkit("decide", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path))
    assert "target_latency_p99_ms" in line and "event_rate_per_s" in line
    assert not (tmp_path / "out").exists()


def test_the_shipped_requirements_still_load() -> None:
    shipped = sorted((REPO / "scenarios" / "requirements").glob("*.toml"))
    assert shipped
    for path in shipped:
        load_requirements(path)


def test_a_rate_one_run_cannot_publish_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(STATED.replace("event_rate_per_s = 2", "event_rate_per_s = 100001"))
    with pytest.raises(ConfigError, match="at most 100000"):
        plan_decision(load_requirements(path), tmp_path)
    line = one_line_exit_2(labkit("decide", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path))
    assert "event_rate_per_s" in line and "100,000" in line
    plan_decision(load_requirements(path.write_text(STATED) and path), tmp_path)  # the stated rate plans fine
