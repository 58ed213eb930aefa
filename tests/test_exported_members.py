"""Nothing becomes public by accident, and everything public resolves."""

import inspect

import labkit

# The public API, spelled out: a name added to or dropped from labkit.__all__ must be added or dropped here too.
PUBLIC = {
    "ConfigError",
    "LabkitError",
    "PollerSettings",
    "ProviderSettings",
    "ReceiverSettings",
    "Requirements",
    "ResultsError",
    "RunResult",
    "RunSettings",
    "WorkloadSettings",
    "__version__",
    "arun",
    "build_workload",
    "decide",
    "figures",
    "fit_costs",
    "load_capacity",
    "load_events",
    "load_experiment",
    "load_latency_logs",
    "load_results",
    "model",
    "project",
    "run",
    "run_sweep",
    "write_report",
}


def test_the_public_names_are_exactly_the_declared_ones():
    assert set(labkit.__all__) == PUBLIC
    assert set(dir(labkit)) >= PUBLIC  # tab completion offers every public name


def test_every_public_name_is_labkits_own():
    """Each name resolves to something labkit defines (not a re-exported third-party object)."""
    for name in sorted(PUBLIC - {"__version__"}):
        obj = getattr(labkit, name)
        home = obj.__name__ if inspect.ismodule(obj) else obj.__module__
        assert home.startswith("labkit."), f"labkit.{name} comes from {home}"
    assert isinstance(labkit.__version__, str) and labkit.__version__[0].isdigit()


def test_unknown_name_raises_attribute_error():
    try:
        labkit.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_latency_logs_loader_is_public():
    from labkit.results import hlog

    assert "load_latency_logs" in labkit.__all__
    assert labkit.load_latency_logs is hlog.load_latency_logs


def test_arun_is_the_async_entry_point_beside_run():
    assert "arun" in labkit.__all__ and "run" in labkit.__all__
    assert inspect.iscoroutinefunction(labkit.arun)
    assert not inspect.iscoroutinefunction(labkit.run)
