"""Failures: what each delivery style loses, repeats or lets in when something breaks.

``plans`` holds the fault settings (a ``RunSettings.fault``); ``orchestrator``
runs one style of a run with its fault injected and measures what happened;
``measures`` turns the databases a run leaves behind into numbers. Nothing is
imported here, so ``labkit.config`` can use ``plans`` without pulling in the
orchestrator's process machinery.
"""
