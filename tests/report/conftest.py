"""Fixtures of the report tests: the committed results and a stand-in figures module."""

from __future__ import annotations

import sys

import pytest
from report_helpers import FIXTURES, stand_in_figures


@pytest.fixture(scope="session")
def results_df():
    from labkit.results import load_results

    return load_results(FIXTURES)


@pytest.fixture
def fake_figures(monkeypatch):
    """Install a stand-in ``labkit.figures`` so a test does not depend on the real one's state."""

    def install(**kwargs):
        mod = stand_in_figures(**kwargs)
        monkeypatch.setitem(sys.modules, "labkit.figures", mod)
        return mod

    return install
