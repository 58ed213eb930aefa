"""CLI commands that live beside their feature; each module adds itself to ``labkit.cli.app``.

Every module in this package is imported by ``labkit.cli.main`` before the
command line is parsed. A module here only parses options and calls library
functions, like the commands in ``labkit.cli``.
"""

from __future__ import annotations

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")
