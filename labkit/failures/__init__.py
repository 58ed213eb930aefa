"""Failures: what each delivery style loses, repeats or lets in when something breaks.

``plans`` holds the fault settings (a ``RunSettings.fault``); a run with a
fault goes through the one pipeline (``labkit.lab.session``) with the fault's
injector (``labkit.lab.faults``) hooked in; ``table`` turns the fault blocks of
a failure experiment into rows. Nothing is imported here, so
``labkit.config`` can use ``plans`` without pulling in the pipeline.
"""
