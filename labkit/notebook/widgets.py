"""The notebooks' widgets: ipywidgets wired to labkit calls.

Each renders once on creation, so a headless run (the tests, papermill) shows
the default view; a button that measures runs through ``labkit.notebook.runs``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

import labkit
from labkit import styles
from labkit.notebook.runs import run, settings_with
from labkit.notebook.views import projection_frame, recommendation_markdown


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
                result = run(settings_with(settings, styles=interval_styles, poll_interval_s=t), f"{name}-T{t:.3g}")
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
        cheaper = styles.styles_of("pull")[0] if poll < 1 else ("neither (a tie)" if math.isclose(poll, 1.0) else "push")
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
