"""Campaigns of runs: experiment files, resumable sweeps, and the runs ``labkit decide`` plans.

A campaign turns a file (an experiment, a requirements file) into points of
``RunSettings``, runs each through ``labkit.lab.pipeline`` and skips the points
already done.
"""
