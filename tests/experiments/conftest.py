"""Shared paths for the experiment, sweep, calibration and figure tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "results" / "fixture-lambda-t"
EXPERIMENTS = REPO / "scenarios" / "experiments"


@pytest.fixture
def write_toml(tmp_path):
    """Write an experiment file and return its path."""

    def write(text: str, name: str = "exp.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
