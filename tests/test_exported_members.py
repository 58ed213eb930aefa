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


def test_arun_is_the_async_entry_point_beside_run():
    import inspect

    assert "arun" in labkit.__all__ and "run" in labkit.__all__
    assert inspect.iscoroutinefunction(labkit.arun)
    assert not inspect.iscoroutinefunction(labkit.run)
