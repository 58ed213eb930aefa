"""Results on disk: the run directory's layout, writers and loaders, and the HdrHistogram latency logs.

Every document written here carries a ``schema_version``; a loader refuses one it does not know.
"""
