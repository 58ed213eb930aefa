"""API polling's StyleInfo, kept importable here; the style itself is ``labkit.styles.polling``."""

from __future__ import annotations

from labkit.styles.polling import POLLING

__all__ = ["POLLING"]
