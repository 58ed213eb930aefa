"""The run pipeline: one session per style (``session``), faults as injectors (``faults``), summaries (``summary``).

``labkit.lab.run`` / ``labkit.lab.arun`` run every style of a ``RunSettings``
on one seeded workload; a run with a ``fault`` is the same pipeline with an
injector hooked in.
"""

from __future__ import annotations
