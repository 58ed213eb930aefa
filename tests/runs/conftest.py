"""Fixtures of the experiment-file and sweep tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write_toml(tmp_path):
    """Write an experiment file and return its path."""

    def write(text: str, name: str = "exp.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
