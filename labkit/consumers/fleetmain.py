"""What every consumer fleet process does around its fleet: file limits, the loop, signals, the command line.

The poller fleet and the stream fleet differ in what they hold (polls on a
timetable, held streams) but start and stop the same way: lift the open-files
limit (each consumer holds a socket), run on uvloop, stop on SIGTERM or SIGINT
and write the final stats, and read their settings from one JSON file when run
as ``python -m``. That part lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from labkit.config import Settings, validated
from labkit.errors import LabkitError

R = TypeVar("R")
S = TypeVar("S", bound=Settings)


def raise_fd_limit(wanted: int) -> None:
    """Each consumer holds a socket: lift the soft open-files limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + 1024)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (timers and reads with less overhead), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop


def run_until_signalled(run: Callable[[asyncio.Event], Coroutine[Any, Any, R]]) -> R:
    """Run ``run(stop)`` on a fresh loop; SIGTERM or SIGINT sets ``stop`` so the fleet ends and writes its stats."""

    async def _main() -> R:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # only the main thread may install handlers; a fleet run in a thread (tests) is stopped through ``stop``
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        return await run(stop)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_main())


def cli(argv: list[str], module: str, role: str, model: type[S], main: Callable[[S], object]) -> int:
    """``python -m MODULE SETTINGS_JSON_FILE``: one line and exit 2 for bad input, the error's code for a failed run."""
    if len(argv) != 1:
        sys.stderr.write(f"usage: python -m {module} SETTINGS_JSON_FILE\n")
        return 2
    try:
        try:
            data = json.loads(Path(argv[0]).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            sys.stderr.write(f"labkit {role}: error: cannot read settings {argv[0]}: {exc}\n")
            return 2
        main(validated(model, data))
    except LabkitError as exc:
        sys.stderr.write(f"labkit {role}: error: {exc}\n")
        return exc.exit_code
    return 0
