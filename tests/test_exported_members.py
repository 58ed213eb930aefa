"""Nothing becomes public by accident, and everything public resolves."""

import labkit


def test_all_is_sorted_and_resolves():
    assert labkit.__all__ == sorted(labkit.__all__)
    for name in labkit.__all__:
        assert getattr(labkit, name) is not None, name


def test_unknown_name_raises_attribute_error():
    try:
        labkit.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_latency_logs_loader_is_public():
    from labkit import hlog

    assert "load_latency_logs" in labkit.__all__
    assert labkit.load_latency_logs is hlog.load_latency_logs
