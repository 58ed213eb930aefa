"""The command line: parses arguments, builds settings, calls the library."""

from __future__ import annotations

from labkit.cli.main import main

__all__ = ["main"]
