"""Execute the notebooks headless and keep each executed copy, as a notebook and as static HTML.

A reader without a kernel opens the HTML; the executed ``.ipynb`` is the record
of that run, the way teams that schedule notebooks keep them (papermill adds
its parameters and cell timings to the notebook's metadata). The notebooks'
own results go to the same folder (``LABKIT_RESULTS``), so a folder holds a
notebook, its HTML and what it measured. Quick mode is the notebooks' own
switch, the ``LABKIT_QUICK`` environment variable, set here for the kernel.

The kernels get a private ``TMPDIR``, made here and removed when the
notebooks end, however they end: a notebook's ``labkit.run`` keeps its work
directory (settings with API keys and the webhook secret, databases) under
it, and a kernel that is shut down mid-cell (Ctrl-C, SIGTERM) never reaches
its own clean-up. A kernel's stderr goes to ``<name>.kernel.log`` beside the
notebook (removed when empty), not to the terminal: a kernel that loses its
client prints ZMQ tracebacks that say nothing to the user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

QUICK_ENV = "LABKIT_QUICK"
RESULTS_ENV = "LABKIT_RESULTS"
CELL_TIMEOUT_S = 1800
KERNEL = "python3"
# How often a wait for a kernel message looks at the socket again (see ``kernel_manager_class``).
REPOLL_S = 1.0
# ipykernel warns on every start that its loopback TCP channels are unencrypted; a line per notebook that says nothing
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]

Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class ExecutedNotebook:
    """One notebook's executed copy and HTML export; ``error`` is the failing cell's exception, if any."""

    name: str
    ipynb: Path
    html: Path
    seconds: float
    error: str | None = None


def notebooks_dir() -> Path:
    """The checkout's ``notebooks/`` folder (the notebooks ship with the repository, not the wheel)."""
    folder = Path(__file__).resolve().parents[2] / "notebooks"
    if not folder.is_dir():
        raise ConfigError(f"no notebooks folder at {folder}: run from a labkit checkout")
    return folder


def notebook_sources(folder: Path | None = None, only: tuple[str, ...] = ()) -> list[Path]:
    """The ``NN-name.py`` sources in order, or those whose name starts with one of ``only`` (e.g. ``01``)."""
    folder = folder or notebooks_dir()
    sources = sorted(folder.glob("[0-9][0-9]-*.py"))
    if only:
        unknown = [o for o in only if not any(s.stem.startswith(o) for s in sources)]
        if unknown:
            raise ConfigError(f"no notebook named {', '.join(unknown)}; choose from {', '.join(s.stem for s in sources)}")
        sources = [s for s in sources if s.stem.startswith(only)]
    return sources


@contextlib.contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or unset, for None) environment variables for the kernels started inside, then restore them."""
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def kernel_manager_class(stderr_path: Path | None = None) -> type[AsyncKernelManager]:
    """A kernel manager whose clients look at their shell and iopub sockets again every ``REPOLL_S``.

    nbclient waits for a cell's reply with one poll as long as the cell's
    timeout; a wake-up that asyncio misses (seen here after a cell that shows
    ipywidgets: the kernel idle, the reply queued, nbclient waiting for ever)
    is then never noticed. A poll that times out re-reads the socket's state,
    so short polls in a loop turn a lost wake-up into a delay of ``REPOLL_S``.
    ``stderr_path``: the kernel's stderr is appended there instead of the terminal.
    """
    from queue import Empty

    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Type

    class WakefulChannel(AsyncZMQSocketChannel):
        async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                step = REPOLL_S if deadline is None else max(0.0, min(REPOLL_S, deadline - time.monotonic()))
                try:
                    return await super().get_msg(timeout=step)
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

    class WakefulKernelClient(AsyncKernelClient):
        shell_channel_class = Type(WakefulChannel)
        iopub_channel_class = Type(WakefulChannel)

    class WakefulKernelManager(AsyncKernelManager):
        client_factory = Type(WakefulKernelClient)

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if stderr_path is None:
                await super()._async_launch_kernel(kernel_cmd, **kw)
                return
            with stderr_path.open("ab") as err:  # the kernel keeps its own copy of the descriptor
                await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": err})

    return WakefulKernelManager


def export_html(ipynb: Path) -> Path:
    """A static, self-contained HTML export (figures embedded) beside the executed notebook."""
    import nbconvert
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    html = ipynb.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def execute_notebook(source: Path, out_dir: Path, *, parameters: Mapping[str, Any] | None = None) -> ExecutedNotebook:
    """Execute one jupytext source with papermill (from its own folder), then export it to HTML.

    ``parameters`` are injected after the cell tagged ``parameters``, as
    ``papermill -p NAME VALUE`` does. A failing cell is recorded, not raised:
    the executed copy shows where it stopped.
    """
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    ipynb = out_dir / f"{source.stem}.ipynb"
    kernel_log = out_dir / f"{source.stem}.kernel.log"
    started = time.monotonic()
    error = None
    try:
        papermill.execute_notebook(
            jupytext.read(source),
            str(ipynb),
            parameters=dict(parameters or {}),
            kernel_name=KERNEL,
            progress_bar=False,
            cwd=str(source.parent),
            execution_timeout=CELL_TIMEOUT_S,
            extra_arguments=KERNEL_ARGS,
            kernel_manager_class=kernel_manager_class(kernel_log),
        )
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}".splitlines()[0]
    finally:
        with contextlib.suppress(OSError):
            if kernel_log.stat().st_size == 0:
                kernel_log.unlink()
    seconds = time.monotonic() - started
    return ExecutedNotebook(source.stem, ipynb, export_html(ipynb), seconds, error)


def run_notebooks(
    out_dir: Path,
    *,
    quick: bool = False,
    only: tuple[str, ...] = (),
    parameters: Mapping[str, Any] | None = None,
    progress: Progress = _no_progress,
    log: Callable[[str], None] = lambda message: None,
) -> list[ExecutedNotebook]:
    """Execute every notebook in order into ``out_dir`` (their runs land there too); one record each."""
    sources = notebook_sources(only=only)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _private_tmp() as tmp:
        env = {QUICK_ENV: "1" if quick else None, RESULTS_ENV: str(out_dir.resolve()), "MPLBACKEND": "Agg", "TMPDIR": str(tmp)}
        return _run_each(sources, out_dir, env, parameters, progress, log)


@contextlib.contextmanager
def _private_tmp() -> Iterator[Path]:
    """A private TMPDIR for the kernels, removed at the end even after an interrupt (see the module doc)."""
    tmp = Path(tempfile.mkdtemp(prefix="labkit-notebooks-"))
    try:
        yield tmp
    finally:
        # A killed kernel's servers die with it (PR_SET_PDEATHSIG) and may still write a last log line.
        for _ in range(20):
            shutil.rmtree(tmp, ignore_errors=True)
            if not tmp.exists():
                break
            time.sleep(0.1)


def _run_each(
    sources: list[Path],
    out_dir: Path,
    env: Mapping[str, str | None],
    parameters: Mapping[str, Any] | None,
    progress: Progress,
    log: Callable[[str], None],
) -> list[ExecutedNotebook]:
    done: list[ExecutedNotebook] = []
    progress("notebooks", 0, len(sources))
    with _environment(env):
        for i, source in enumerate(sources, 1):
            log(f"{source.stem}: executing")
            record = execute_notebook(source, out_dir, parameters=parameters)
            done.append(record)
            outcome = f"FAILED at {record.error}" if record.error else "done"
            log(f"{source.stem}: {outcome} in {record.seconds:.0f} s -> {record.html}")
            progress("notebooks", i, len(sources))
    return done
