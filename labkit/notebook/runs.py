"""The notebooks' modes, places and runs: quick mode, the results folder, progress bars, runs off Jupyter's loop.

``await arun(settings, name)`` runs on the notebook's own event loop through
``labkit.arun``. The synchronous helpers (``run``, ``sweep``, ``capacity``,
``tls_cost``) call library functions that start their own event loop, which
Jupyter's running loop forbids in its thread: they run in a worker thread and
wait (``off_the_loop``).
"""

from __future__ import annotations

import concurrent.futures
import copy
import os
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

import labkit
from labkit.notebook.views import REPORT_INPUTS

QUICK_ENV = "LABKIT_QUICK"
RESULTS_ENV = "LABKIT_RESULTS"
_TRUE = ("1", "true", "yes", "on")

T = TypeVar("T")

# -- modes and places -----------------------------------------------------------------------


def quick_mode() -> bool:
    """True when ``LABKIT_QUICK`` is set to 1 (or true/yes/on): small runs for tests and a first look."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in _TRUE


def params(*, full: T, quick: T) -> T:
    """The value for the current mode: ``quick`` under ``LABKIT_QUICK=1``, else ``full``."""
    return quick if quick_mode() else full


def checkout() -> Path:
    """The labkit checkout: the first folder holding ``scenarios/experiments``, from the cwd up.

    JupyterLab starts kernels in ``notebooks/``; a test may start them anywhere.
    Falls back to the folder above the package (an editable install).
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "scenarios" / "experiments").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


def scenarios_dir() -> Path:
    return checkout() / "scenarios"


def results_root() -> Path:
    """Where notebooks write: ``LABKIT_RESULTS`` if set, else results/notebooks (…/quick in quick mode)."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        root = checkout() / "results" / "notebooks"
        if quick_mode():
            root = root / "quick"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def setup() -> None:
    """Figures (``labkit.analysis.figures`` returns bare Figures) render inline as PNG; say the mode and the folder."""
    from IPython import get_ipython
    from IPython.core.pylabtools import select_figure_formats
    from IPython.display import Markdown, display

    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"}, bbox_inches="tight")
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.precision", 3)
    pd.set_option("display.max_colwidth", 120)
    mode = (
        f"**quick mode** (`{QUICK_ENV}=1`): small runs, noisy numbers"
        if quick_mode()
        else f"**full mode**: realistic runs, a few minutes each (set `{QUICK_ENV}=1` for a quick look)"
    )
    display(Markdown(f"{mode}; results go to `{results_root()}`"))


# -- running labkit from a notebook -----------------------------------------------------------


def off_the_loop(fn: Callable[..., T], *args: Any, bar: NotebookProgress | None = None, **kwargs: Any) -> T:
    """Call ``fn``; in a worker thread when this thread runs an event loop (Jupyter's does).

    The worker only records progress; this thread draws it, so every message
    to the browser leaves from the kernel's own thread.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        value = fn(*args, **kwargs)
        if bar is not None:
            bar.flush()
        return value
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-run")
    try:
        future = pool.submit(fn, *args, **kwargs)
        while True:
            try:
                value = future.result(timeout=0.2)
                break
            except concurrent.futures.TimeoutError:
                if bar is not None:
                    bar.flush()
            except KeyboardInterrupt:
                raise KeyboardInterrupt("interrupted: the run goes on in the background until it ends or the kernel restarts") from None
    finally:
        pool.shutdown(wait=False)  # after an interrupt, do not wait for the run: that is what the user asked
    if bar is not None:
        bar.flush()
    return value


class NotebookProgress:
    """A progress bar and a status line under the cell; ``update`` and ``log`` match the library's callbacks.

    Callbacks may come from a worker thread: they only record; ``flush`` draws.
    """

    def __init__(self, title: str) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._bar = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="40%"))
        self._phase = widgets.Label(title)
        self._log = widgets.Label("")
        self._lock = threading.Lock()
        self._pending: tuple[str, int, int] | None = None
        self._message: str | None = None
        display(widgets.VBox([widgets.HBox([self._bar, self._phase]), self._log]))

    def update(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            self._pending = (phase, done, total)

    def log(self, message: str) -> None:
        with self._lock:
            self._message = message

    def flush(self) -> None:
        with self._lock:
            pending, message = self._pending, self._message
            self._pending = self._message = None
        if pending is not None:
            phase, done, total = pending
            self._phase.value = phase
            self._bar.max = max(total, 1)
            self._bar.value = min(done, max(total, 1))
        if message is not None:
            self._log.value = message

    def done(self, message: str) -> None:
        self.flush()
        self._bar.value = self._bar.max
        self._bar.bar_style = "success"
        self._log.value = message


def settings_with(settings: Any, **changes: Any) -> Any:
    """A validated copy of a settings object with some fields changed."""
    return type(settings).model_validate({**settings.model_dump(), **changes})


def run(settings: Any, name: str) -> Any:
    """``labkit.run`` into ``results_root()/name`` (replaced on a rerun), with a progress bar; a RunResult."""
    out = results_root() / name
    bar = NotebookProgress(f"run {name}")
    result = off_the_loop(labkit.run, settings, bar=bar, progress=bar.update, run_id=out.name, results_dir=out)
    bar.done(f"done: {result.results_dir}")
    return result


async def arun(settings: Any, name: str) -> Any:
    """``await labkit.arun`` on the notebook's own loop into ``results_root()/name``, with a progress bar."""
    import asyncio

    out = results_root() / name
    bar = NotebookProgress(f"run {name}")

    async def redraw() -> None:
        while True:
            bar.flush()
            await asyncio.sleep(0.2)

    drawer = asyncio.create_task(redraw())
    try:
        result = await labkit.arun(settings, progress=bar.update, run_id=out.name, results_dir=out)
    finally:
        drawer.cancel()
    bar.done(f"done: {result.results_dir}")
    return result


def _experiment_doc(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    if isinstance(source, Mapping):
        doc = copy.deepcopy(dict(source))
        name = str((doc.get("experiment") or {}).get("name", "notebook"))
        return doc, results_root() / f"{name}.toml"
    path = Path(source)
    if not path.suffix:
        path = scenarios_dir() / "experiments" / f"{path}.toml"
    from labkit.errors import ConfigError

    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), path
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file") from None


def experiment(
    source: str | Path | Mapping[str, Any],
    *,
    name: str | None = None,
    run: Mapping[str, Any] | None = None,
    workload: Mapping[str, Any] | None = None,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    only: Iterable[str] | None = None,
) -> Any:
    """An experiment (``labkit.runs.experiments.Experiment``) writing under ``results_root()``.

    ``source`` is a file in scenarios/experiments/ (by stem: ``"wasted-polls"``), a
    path, or the tables of an experiment file as a dict. ``run`` and ``workload``
    override keys of those tables; ``only`` keeps the named variants;
    ``variants`` updates (or adds) variants key by key. Validated like a file:
    a bad value raises ``ConfigError`` naming the key.
    """
    from labkit.runs.experiments import parse_experiment

    doc, path = _experiment_doc(source)
    if name is not None:
        doc.setdefault("experiment", {})["name"] = name
    for table, overrides in (("run", run), ("workload", workload)):
        if overrides:
            doc.setdefault(table, {}).update(overrides)
    if only is not None:
        keep = list(only)
        doc["variants"] = {k: v for k, v in doc.get("variants", {}).items() if k in keep}
    for vname, overrides in (variants or {}).items():
        doc.setdefault("variants", {}).setdefault(vname, {}).update(overrides)
    return parse_experiment(doc, path, results_root())


def sweep(exp: Any, *, force: bool = False) -> pd.DataFrame:
    """Run the experiment's points not yet in its results; one row per (point, style) of these points.

    A finished point is skipped (rerunning the notebook costs nothing), unless ``force``.
    Only the points of ``exp`` are returned, not older points in the same folder.
    """
    from labkit.runs.sweep import build_table

    bar = NotebookProgress(f"sweep {exp.name}: {len(exp)} points")
    result = off_the_loop(labkit.run_sweep, exp, bar=bar, force=force, progress=bar.update, log=bar.log)
    ran = sum(not o.skipped for o in result.points)
    bar.done(f"done: {ran} run, {len(result.points) - ran} already there, in {result.results_dir}")
    return build_table([o.results_dir for o in result.points])


def events(results: pd.DataFrame) -> pd.DataFrame:
    """Per-event records (``load_events``) of exactly the runs in a results frame."""
    dirs = list(dict.fromkeys(results["results_dir"])) if "results_dir" in results.columns else []
    frames = [f for f in (labkit.load_events(d) for d in dirs) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["run_id", "style", "consumer", "event_id", "created_ns", "received_ns", "latency_us"])
    return pd.concat(frames, ignore_index=True)


def fault_table(results: pd.DataFrame) -> pd.DataFrame:
    """``labkit.analysis.failure_table.fault_table`` for exactly the runs in a results frame: what each fault cost each style."""
    from labkit.analysis.failure_table import fault_table as table_of

    frames = [table_of(d) for d in dict.fromkeys(results["results_dir"])]
    if not frames:
        return pd.DataFrame(columns=["fault", "kind", "style"])
    return pd.concat(frames, ignore_index=True)


def capacity(**settings: Any) -> Any:
    """A Locust capacity run (``labkit.capacity.run_capacity``) under results_root()/capacity; a CapacityResult."""
    from labkit.capacity import CapacitySettings, run_capacity

    cap = CapacitySettings.model_validate({"out_dir": str(results_root()), "scenarios_dir": str(scenarios_dir()), **settings})
    bar = NotebookProgress(f"capacity: {cap.scenario}, up to {cap.max_users} users, at most {cap.duration_s:g} s")
    result = off_the_loop(run_capacity, cap, bar=bar, progress=bar.log)
    bar.done(f"done: {result.results_dir}")
    return result


def tls_cost(requests: int = 200) -> pd.DataFrame:
    """``labkit tls-cost``: signed deliveries over HTTP and HTTPS, fresh and reused connections (ms per delivery)."""
    from labkit.servers.tls import measure_handshake_cost

    result = off_the_loop(measure_handshake_cost, requests=requests)
    frame = pd.DataFrame(result["modes"]).T[["wall_ms_median", "client_cpu_ms", "server_cpu_ms"]]
    frame.loc["a TLS handshake adds"] = [result["handshake"][k] for k in ("wall_ms", "client_cpu_ms", "server_cpu_ms")]
    frame.index.name = f"{result['tls'].get('version', 'TLS')}, {requests} deliveries per mode"
    return frame


# -- the decision report's inputs ---------------------------------------------------------------


def report_inputs(fallback: Any) -> list[Path]:
    """The result folders notebooks 01-03 wrote; when there are none, a run of ``fallback`` settings."""
    from labkit.results.layout import SUMMARY

    root = results_root()
    found = [root / name for name in REPORT_INPUTS if any((root / name).rglob(SUMMARY))]
    if found:
        return found
    return [run(fallback, "nb06-compare").results_dir]
