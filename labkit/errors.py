"""The one exception tree of labkit.

    LabkitError                 anything labkit raises on purpose; the CLI prints one line
     +-- ConfigError            bad settings, options or experiment files (a user error, exit 2)
     +-- ResultsError           results that are missing, corrupted or of an unknown schema (exit 2)
     +-- ServerError            a server process that would not start, or died (exit 1)
     |    +-- OpenFilesExhausted  a server at its open-files limit refused the connections a run asked for
     +-- RunError               a run that could not complete (exit 1)
     +-- WireError              an HTTP exchange that produced no response (labkit.wire.errors has its kinds)

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base of every error labkit raises on purpose."""

    exit_code: int = 1


class ConfigError(LabkitError):
    """Settings, command-line values or an experiment file are invalid."""

    exit_code = 2


class ResultsError(LabkitError):
    """A results directory or file is missing, corrupted or of an unknown schema."""

    exit_code = 2


class ServerError(LabkitError):
    """A server process failed to start, or died during a run."""


class OpenFilesExhausted(ServerError):
    """A server had every file it may open (one per connection) and so could not take the connections a run asked for.

    Not a crash: the run asked one process for more connections than its open-files
    limit allows, so the limit, not its CPU, decided. The numbers say by how much.
    """

    def __init__(self, message: str, *, role: str, open_files: int, limit: int, connected: int, requested: int) -> None:
        super().__init__(message)
        self.role = role
        self.open_files = open_files
        self.limit = limit
        self.connected = connected
        self.requested = requested


class RunError(LabkitError):
    """A run could not be completed."""


class WireError(LabkitError):
    """An HTTP request got no usable response: bad URL, refused address, no connection, timeout, malformed reply."""
