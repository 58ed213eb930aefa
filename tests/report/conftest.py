"""Fixtures of the report tests: the committed results, stand-in stream styles and a stand-in figures module."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from tests.helpers.report import COMPARE_RUN, SWEEP, stand_in_figures, stream_styles_registered


@pytest.fixture(scope="session")
def results_df():
    """The webhook-and-polling fixtures (one compare run and a sweep); the stream fixture is loaded on its own."""
    from labkit.results.layout import load_results

    return pd.concat([load_results(COMPARE_RUN.parent), load_results(SWEEP)], ignore_index=True)


@pytest.fixture(autouse=True, scope="module")
def stream_styles():
    """The report sees `sse` and `websocket` in the registry (stand-ins until their style modules are installed)."""
    with stream_styles_registered():
        yield


@pytest.fixture
def fake_figures(monkeypatch):
    """Install a stand-in ``labkit.analysis.figures`` so a test does not depend on the real one's state."""

    def install(**kwargs):
        mod = stand_in_figures(**kwargs)
        monkeypatch.setitem(sys.modules, "labkit.analysis.figures", mod)
        return mod

    return install
