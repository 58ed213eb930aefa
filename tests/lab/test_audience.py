"""Audience settings: validated as one line, seeded assignment that every style agrees on."""

from collections import Counter

import pytest

from labkit.config import RunSettings, parse_skew, validated
from labkit.errors import ConfigError
from labkit.lab.workload import audience_for, plan_audience, skew_weights
from tests.helpers.cli import labkit


@pytest.mark.parametrize(
    "args, names",
    [
        (["--audience", "everyone"], "--audience"),
        (["--audience", "per-consumer", "--consumer-skew", "zipf:-1"], "--consumer-skew"),
        (["--audience", "per-consumer", "--consumer-skew", "pareto"], "--consumer-skew"),
        (["--audience", "topics", "--topics", "5"], "--subscriptions"),
        (["--audience", "topics", "--subscriptions", "2"], "--topics"),
        (["--audience", "topics", "--topics", "2", "--subscriptions", "3"], "--subscriptions"),
        (["--topics", "4", "--subscriptions", "2"], "--topics"),
        (["--consumer-skew", "zipf:1.1"], "--consumer-skew"),
    ],
)
def test_bad_audience_is_one_line_and_exit_2(args, names):
    proc = labkit("compare", "--duration", "0.5", "--no-report", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"labkit: error: {names}:"), lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "data, field",
    [
        ({"audience": "all"}, "audience"),
        ({"audience": "per-consumer", "consumer_skew": "zipf:-1"}, "consumer_skew"),
        ({"audience": "per-consumer", "consumer_skew": "zipf:nan"}, "consumer_skew"),
        ({"audience": "topics", "topics": 3}, "subscriptions"),
        ({"audience": "topics", "topics": 3, "subscriptions": 4}, "subscriptions"),
        ({"audience": "per-consumer", "topics": 3}, "topics"),
    ],
)
def test_settings_name_the_field(data, field):
    with pytest.raises(ConfigError) as err:
        validated(RunSettings, data)
    assert str(err.value).startswith(f"{field}:")


def test_skew_parses():
    assert parse_skew("uniform") == 0.0
    assert parse_skew("zipf:1.1") == 1.1
    assert skew_weights(3, 0) == pytest.approx([1 / 3] * 3)
    w = skew_weights(3, 1)
    assert w[0] / w[1] == pytest.approx(2) and w[0] / w[2] == pytest.approx(3)


def test_per_consumer_assignment_is_seeded_and_skewed():
    names = [f"p{i}" for i in range(50)]
    a = plan_audience("per-consumer", names, 5000, seed=3, skew_s=1.1)
    b = plan_audience("per-consumer", names, 5000, seed=3, skew_s=1.1)
    c = plan_audience("per-consumer", names, 5000, seed=4, skew_s=1.1)
    assert a.target == b.target and a.target != c.target
    counts = Counter(a.target)
    assert counts[0] > 3 * counts[9] > 0  # rank 1 against rank 10: about 10^1.1 = 12.6 times
    assert sum(a.events_per_consumer().values()) == 5000
    assert sum(a.rates(20.0)) == pytest.approx(20.0)
    # every event belongs to exactly one consumer, the one the plan names
    logged = {i + 1: ("order.updated", a.event_consumer(i)) for i in range(5000)}
    expected = a.expected(logged)
    assert sum(len(v) for v in expected.values()) == 5000
    assert all(a.event_consumer(e - 1) == c for c, ids in expected.items() for e in ids)


def test_topics_assignment_follows_subscriptions():
    names = [f"c{i}" for i in range(20)]
    plan = plan_audience("topics", names, 400, seed=1, topics=6, subscriptions=2)
    assert all(len(set(f)) == 2 and all(0 <= k < 6 for k in f) for f in plan.follows)
    logged = {i + 1: (plan.event_type(i, "x"), None) for i in range(400)}
    expected = plan.expected(logged)
    for i, name in enumerate(names):
        mine = set(plan.topics_of(i))
        assert expected[name] == {e for e, (t, _) in logged.items() if t in mine}
    assert sum(len(v) for v in expected.values()) == sum(plan.events_per_consumer().values())


def test_broadcast_is_everyone():
    s = RunSettings(pollers=3)
    plan = audience_for(s, ["p0", "p1", "p2"], 10)
    assert plan.broadcast and plan.events_per_consumer() == {"p0": 10, "p1": 10, "p2": 10}
    assert plan.rates(5.0) == [5.0, 5.0, 5.0]


def test_compare_subscribers_follow_pollers_under_an_audience():
    from labkit.cli.compare import subscribers_for

    assert subscribers_for(None, 7, "broadcast") == 1  # today's default
    assert subscribers_for(None, 7, "per-consumer") == 7 and subscribers_for(None, 7, "topics") == 7
    assert subscribers_for(3, 7, "per-consumer") == 3  # given wins
