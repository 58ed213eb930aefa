"""Paths the tests share: the repository, the committed fixture results and the shipped scenarios."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
FIXTURE = FIXTURES / "results" / "fixture-lambda-t"
EXPERIMENTS = REPO / "scenarios" / "experiments"
REQUIREMENTS = REPO / "scenarios" / "requirements"
