"""The run pipeline: whole runs (``pipeline``), one session per style (``session``), faults as injectors (``faults``).

``labkit.lab.pipeline.run`` / ``arun`` (``labkit.run`` / ``labkit.arun``) run
every style of a ``RunSettings`` on one seeded workload; a run with a
``fault`` is the same pipeline with an injector hooked in. ``measures`` turns
what a run leaves behind into lost events, catch-up times and latencies.
"""

from __future__ import annotations
