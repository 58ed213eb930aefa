"""Reading a small user file (experiment, requirements, secret) without trusting what the path is.

A path can name a device (``/dev/zero`` never ends), a FIFO (a read blocks
until someone writes), a folder or a file far larger than any settings file.
``read_capped`` opens only a regular file and reads at most ``max_bytes`` + 1
bytes, so each of those is one ``ConfigError`` line instead of a hang or a
MemoryError.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from labkit.errors import ConfigError


def read_capped(path: str | os.PathLike[str], where: str, what: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes``; errors start with ``where`` and name ``what``.

    ``what`` is the kind of file with its article ("an experiment file").
    The FIFO check comes before any open (opening a FIFO for reading blocks).
    """
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{where}: is a folder, not {what}")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{where}: not a regular file; {what} is a TOML file")
        if st.st_size > max_bytes:
            raise ConfigError(f"{where}: {st.st_size} bytes; {what} is at most {max_bytes} bytes")
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)  # it may have grown since the stat
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such {what.split(' ', 1)[-1]}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    if len(raw) > max_bytes:
        raise ConfigError(f"{where}: over {max_bytes} bytes; {what} is at most {max_bytes} bytes")
    return raw
