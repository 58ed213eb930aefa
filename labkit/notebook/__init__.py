"""What the notebooks in ``notebooks/`` call besides the public API: modes, places, runs, widgets.

A notebook imports the package, sets parameters, calls, plots and explains;
any function it would otherwise define lives here or in
``labkit.notebook.views`` (tables and views, re-exported here).

    quick_mode(), params(full=, quick=)    LABKIT_QUICK=1 shrinks every run so that all the
                                           notebooks execute top to bottom in minutes (the tests)
    results_root(), checkout()             LABKIT_RESULTS, else <checkout>/results/notebooks
                                           (.../notebooks/quick in quick mode: the two never mix)
    setup()                                figures render inline as PNG; says the mode and the folder
    arun(), run(), experiment(), sweep(),  runs, sweeps, capacity tests with a progress bar, each
    capacity(), events(), fault_table()    writing to a fixed folder of the notebook
    interval_explorer(), lambda_t_explorer(), projection_explorer(),
    fault_explorer(), requirements_explorer()
                                           ipywidgets wired to labkit calls; each renders once on
                                           creation, so a headless run shows the default view

``await nb.arun(settings, name)`` runs on the notebook's own event loop
through ``labkit.arun``. The synchronous helpers (``run``, ``sweep``,
``capacity``, ``tls_cost``) call library functions that start their own
event loop, which Jupyter's running loop forbids in its thread: they run in a
worker thread and wait (``off_the_loop``).
"""

from __future__ import annotations

import concurrent.futures
import copy
import math
import os
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

import labkit
from labkit import styles
from labkit.notebook.views import (
    REPORT_INPUTS,
    calibration_frame,
    exchange,
    projection_frame,
    recommendation_markdown,
    report_results,
    show_report,
    ssrf_verdicts,
    summary_frame,
    webhook_message,
)

# Re-exported for the notebooks (``nb.summary_frame`` etc.).
VIEWS = (
    REPORT_INPUTS,
    calibration_frame,
    exchange,
    projection_frame,
    recommendation_markdown,
    report_results,
    show_report,
    ssrf_verdicts,
    summary_frame,
    webhook_message,
)

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


def _settings_with(settings: Any, **changes: Any) -> Any:
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


# -- widgets -------------------------------------------------------------------------------------


def _show_figure(out: Any, fig: Any) -> None:
    from IPython.display import display

    out.clear_output(wait=True)
    with out:
        display(fig)


def _rtt_ms(results: pd.DataFrame) -> float:
    col = results.get("rtt_ms.mean")
    if col is None or pd.to_numeric(col, errors="coerce").dropna().empty:
        return 0.0
    return float(pd.to_numeric(col, errors="coerce").dropna().median())


def interval_explorer(settings: Any, results: pd.DataFrame, events_df: pd.DataFrame, *, name: str = "interval") -> Any:
    """A poll-interval slider over the latency CDFs, and a button that measures polling at the chosen T.

    Moving the slider redraws the model (delay uniform on [0, T] + RTT: mean
    T/2) against the measured curves; the button runs polling alone at that
    T on the same seeded workload (``run``) and puts its curve in place of
    the earlier one, so model and measurement can be compared at any T.
    """
    import ipywidgets as widgets

    from labkit import model
    from labkit.analysis import figures

    rtt = _rtt_ms(results)
    rate = settings.workload.rate_per_s
    # the styles whose delivery a poll interval paces: they are measured again at the chosen T
    interval_styles = tuple(s.name for s in styles.units() if s.shows_interval())
    state = {"events": events_df, "measured_t": settings.poll_interval_s}
    slider = widgets.FloatLogSlider(
        value=settings.poll_interval_s,
        base=10,
        min=-1.5,
        max=1.3,
        step=0.05,
        description="T (s)",
        continuous_update=False,
        readout_format=".3g",
    )
    button = widgets.Button(description="measure polling at this T", icon="play", layout=widgets.Layout(width="auto"))
    text = widgets.HTML()
    out = widgets.Output()

    def render(*_: Any) -> None:
        t = slider.value
        text.value = (
            f"<b>model at T = {t:.3g} s</b> (&lambda; = {rate:g}/s, RTT {rtt:.2g} ms): mean delay T/2 + RTT = "
            f"{model.polling_delay_mean_s(t, rtt / 1000) * 1000:.0f} ms, p99 = {model.polling_delay_quantile_s(0.99, t, rtt / 1000) * 1000:.0f} ms; "
            f"&lambda;T = {rate * t:.3g}, so {model.empty_poll_probability(rate, t):.0%} of polls find nothing and polling costs "
            f"{model.polling_requests_per_event(rate, t):.3g} requests per event (push: 1). "
            f"<br>Measured polling curve: T = {state['measured_t']:.3g} s."
        )
        _show_figure(out, figures.latency_cdf(state["events"], poll_interval_s=t, rtt_ms=rtt))

    def measure(_: Any) -> None:
        button.disabled = True
        try:
            t = slider.value
            with out:
                result = run(_settings_with(settings, styles=interval_styles, poll_interval_s=t), f"{name}-T{t:.3g}")
            fresh = labkit.load_events(result.results_dir)
            kept = state["events"][~state["events"]["style"].isin(interval_styles)]
            state["events"] = pd.concat([kept, fresh], ignore_index=True)
            state["events"]["run_id"] = "runs"  # one curve per style, not per run
            state["measured_t"] = t
            render()
        finally:
            button.disabled = False

    slider.observe(render, names="value")
    button.on_click(measure)
    render()
    return widgets.VBox([widgets.HBox([slider, button]), text, out])


def lambda_t_explorer() -> Any:
    """Event rate and poll interval sliders: the model's wasted polls and requests per event, and which style is cheaper."""
    import ipywidgets as widgets

    from labkit import model

    rate = widgets.FloatLogSlider(value=1.0, base=10, min=-3, max=3, step=0.1, description="events/s", readout_format=".3g")
    interval = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=3, step=0.1, description="T (s)", readout_format=".3g")
    text = widgets.HTML()

    def render(*_: Any) -> None:
        lt = rate.value * interval.value
        empty = model.empty_poll_probability(rate.value, interval.value)
        poll = model.polling_requests_per_event(rate.value, interval.value, 100)
        cheaper = "polling" if poll < 1 else ("neither (a tie)" if math.isclose(poll, 1.0) else "push")
        text.value = (
            f"<b>model</b>: &lambda;T = {lt:.3g} events per poll interval; {empty:.1%} of polls find nothing; "
            f"polling costs {poll:.3g} requests per event per consumer, push 1: <b>{cheaper}</b> sends fewer requests. "
            f"Mean delay of polling T/2 = {model.polling_delay_mean_s(interval.value):.3g} s; push: one round trip."
        )

    rate.observe(render, names="value")
    interval.observe(render, names="value")
    render()
    return widgets.VBox([widgets.HBox([rate, interval]), text])


def projection_explorer(calibration: Any, *, consumers: int = 100_000, rate_per_s: float = 50.0, poll_interval_s: float = 1.0) -> Any:
    """Scale sliders over ``calibration.project``: servers and bandwidth per style, labelled a projection."""
    import ipywidgets as widgets
    from IPython.display import display

    n = widgets.IntSlider(value=consumers, min=1_000, max=1_000_000, step=1_000, description="consumers", continuous_update=False)
    rate = widgets.FloatLogSlider(value=rate_per_s, base=10, min=-2, max=3, step=0.1, description="events/s", continuous_update=False)
    interval = widgets.FloatLogSlider(
        value=poll_interval_s, base=10, min=-1, max=2.5, step=0.1, description="T (s)", continuous_update=False
    )
    out = widgets.Output()

    def render(*_: Any) -> None:
        table = projection_frame(labkit.project(calibration, n.value, rate.value, interval.value))
        out.clear_output(wait=True)
        with out:
            display(table)

    for w in (n, rate, interval):
        w.observe(render, names="value")
    render()
    return widgets.VBox([widgets.HBox([n, rate, interval]), out])


def fault_explorer(results: pd.DataFrame, events_df: pd.DataFrame) -> Any:
    """Pick a fault: each style's latency over the run, the fault's episodes shaded."""
    import ipywidgets as widgets

    from labkit.analysis import figures

    faults = list(dict.fromkeys(results["param.variant"])) if "param.variant" in results.columns else list(dict.fromkeys(results["run_id"]))
    key = "param.variant" if "param.variant" in results.columns else "run_id"
    pick = widgets.Dropdown(options=faults, value=faults[0] if faults else None, description="fault")
    out = widgets.Output()

    def render(*_: Any) -> None:
        rows = results[results[key] == pick.value]
        runs = set(rows["run_id"])
        _show_figure(out, figures.latency_timeline(events_df[events_df["run_id"].isin(runs)], rows, log=True))

    pick.observe(render, names="value")
    if faults:
        render()
    return widgets.VBox([pick, out])


def requirements_explorer(results: pd.DataFrame, requirements: Any) -> Any:
    """Controls over the main requirements; the decision (``labkit.report.decide``) is redone on every change."""
    import ipywidgets as widgets
    from IPython.display import display

    latency = widgets.FloatLogSlider(
        value=requirements.target_latency_p99_ms,
        base=10,
        min=0,
        max=6,
        step=0.1,
        description="p99 target ms",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    rate = widgets.FloatLogSlider(
        value=requirements.event_rate_per_s, base=10, min=-3, max=3, step=0.1, description="events/s", continuous_update=False
    )
    consumers = widgets.IntText(value=requirements.consumers, description="consumers")
    https = widgets.Checkbox(
        value=requirements.consumers_can_expose_https, description="consumers can expose HTTPS", style={"description_width": "initial"}
    )
    missed = widgets.Checkbox(
        value=requirements.missed_events_tolerated, description="missed events tolerated", style={"description_width": "initial"}
    )
    out = widgets.Output()

    def render(*_: Any) -> None:
        req = type(requirements).model_validate(
            {
                **requirements.model_dump(),
                "target_latency_p99_ms": float(latency.value),
                "event_rate_per_s": float(rate.value),
                "consumers": max(1, int(consumers.value)),
                "consumers_can_expose_https": bool(https.value),
                "missed_events_tolerated": bool(missed.value),
            }
        )
        out.clear_output(wait=True)
        with out:
            display(recommendation_markdown(labkit.decide(req, results), reasons=4))

    for w in (latency, rate, consumers, https, missed):
        w.observe(render, names="value")
    render()
    return widgets.VBox([widgets.HBox([latency, rate, consumers]), widgets.HBox([https, missed]), out])


# -- the decision report's inputs ---------------------------------------------------------------


def report_inputs(fallback: Any) -> list[Path]:
    """The result folders notebooks 01-03 wrote; when there are none, a run of ``fallback`` settings."""
    from labkit.results.layout import SUMMARY

    root = results_root()
    found = [root / name for name in REPORT_INPUTS if any((root / name).rglob(SUMMARY))]
    if found:
        return found
    return [run(fallback, "nb06-compare").results_dir]
