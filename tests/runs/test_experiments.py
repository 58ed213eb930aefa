"""Experiment files: validated on load, one line naming the file and the key."""

from __future__ import annotations

import math

import pytest

from labkit.errors import ConfigError
from labkit.runs.experiments import load_experiment, point_id
from tests.helpers.cli import Ran
from tests.helpers.cli import labkit as run_labkit
from tests.helpers.paths import EXPERIMENTS, REPO

GOOD = """
[experiment]
name = "t"
question = "q?"
seed = 3
[run]
styles = ["webhook", "polling"]
poll_interval_s = 0.5
[workload]
rate_per_s = [1.0, 10.0]
duration_s = 4
"""


@pytest.mark.parametrize(
    "text, key, allowed",
    [
        ("[workload]\nrate_per_s = 1\nbogus = 2\n", "workload.bogus", "allowed: arrival"),
        ("[run]\npoll_intervall_s = 1\n", "run.poll_intervall_s", "allowed: styles"),
        ("[experiment]\nname = 'x'\ncolour = 'red'\n", "experiment.colour", "allowed: name"),
        ("[workloads]\nrate_per_s = 1\n", "workloads", "unknown table"),
        ("[workload]\nrate_per_s = 'fast'\n", "workload.rate_per_s", "valid number"),
        ("[workload]\nrate_per_s = '10'\n", "workload.rate_per_s", "valid number"),
        ("[run]\nconditional = 1\n", "run.conditional", "valid boolean"),
        ("[workload]\nseed = 1.5\n", "workload.seed", "valid integer"),
        ("[workload]\nrate_per_s = -1\n", "workload.rate_per_s", "greater than 0"),
        ("[workload]\nrate_per_s = [1.0, 0.0]\n", "workload.rate_per_s", "greater than 0 (got 0.0)"),
        ("[run]\npoll_interval_s = 0\n", "run.poll_interval_s", "greater than or equal to 0.001"),
        ("[workload]\narrival = 'sometimes'\n", "workload.arrival", "'poisson'"),
        ("[run]\nstyles = ['webhook', 'carrier-pigeon']\n", "run.styles", "'webhook', 'polling', 'sse', 'websocket' or 'hybrid'"),
        ("[run]\nconsumers = [1, 30000]\n", "run.consumers", "less than or equal to 10000 (got 30000)"),  # the subscriptions cap
        ("[workload]\nrate_per_s = []\n", "workload.rate_per_s", "empty list"),
        ("[experiment]\nseed = []\n", "experiment.seed", "empty list"),
        ("[experiment]\nseed = [1, 'x']\n", "experiment.seed", "valid integer (got 'x')"),
        ("[workload]\nrate_per_s = [1.0, 1.0]\n", "workload.rate_per_s", "listed twice"),
        ("[experiment]\nname = 'no spaces'\n", "experiment.name", "letters, digits"),
        ("[run]\nout_dir = 'x'\n", "run.out_dir", "unknown setting"),
        ("[workload]\nrate_per_s = 0.01\nduration_s = 10\n", "workload.duration_s", "under one event"),
        ("[workload]\narrival = 'trace'\n", "workload", "trace_path"),
        ("[variants.a]\nbogus = 1\n", "variants.a.bogus", "unknown setting"),
        ("[variants.a]\nbatch_max_events = 0\n", "variants.a.batch_max_events", "greater than or equal to 1"),
        ("[variants.a]\nrate_per_s = [1.0, 2.0]\n", "variants.a.rate_per_s", "one value"),
        ("[run]\nconsumers = 2\npollers = 3\n", "run.consumers", "do not also set pollers"),
    ],
)
def test_bad_file_names_file_and_key(write_toml, text, key, allowed):
    path = write_toml(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}"), message
    assert allowed in message, message


def test_invalid_toml_names_file_and_toml_message(write_toml):
    path = write_toml("[workload\nrate_per_s = 1\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid TOML: ") and "line 1" in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such experiment file"):
        load_experiment(tmp_path / "nope.toml")


def test_grid_is_the_cartesian_product_in_file_order(write_toml):
    exp = load_experiment(write_toml(GOOD + "payload_bytes = [64, 1024, 4096]\n"))
    assert exp.name == "t" and exp.question == "q?"
    assert exp.swept == ("rate_per_s", "payload_bytes")
    assert [p.params for p in exp.points] == [{"rate_per_s": r, "payload_bytes": b} for r in (1.0, 10.0) for b in (64, 1024, 4096)]
    for p in exp.points:
        assert p.settings.workload.rate_per_s == p.params["rate_per_s"]
        assert p.settings.workload.payload_bytes == p.params["payload_bytes"]
        assert p.settings.poll_interval_s == 0.5
        assert p.settings.experiment == "t"
    assert len({p.point_id for p in exp.points}) == 6


def test_each_point_derives_its_own_seed_unless_the_file_pins_it(write_toml):
    from labkit.runs.experiments import point_seed

    exp = load_experiment(write_toml(GOOD))
    seeds = [p.settings.workload.seed for p in exp.points]
    assert len(set(seeds)) == len(seeds) and 3 not in seeds  # independent draws, not the experiment's seed itself
    again = load_experiment(write_toml(GOOD, "again.toml"))
    assert [p.settings.workload.seed for p in again.points] == seeds  # stable: the experiment's seed and the point's id
    assert point_seed(3, "abc") == point_seed(3, "abc") != point_seed(4, "abc")
    other = load_experiment(write_toml(GOOD.replace("seed = 3", "seed = 4"), "other.toml"))
    assert set(seeds).isdisjoint(p.settings.workload.seed for p in other.points)
    pinned = load_experiment(write_toml(GOOD.replace("seed = 3\n", "").replace("duration_s = 4", "duration_s = 4\nseed = 3"), "pin.toml"))
    assert [p.settings.workload.seed for p in pinned.points] == [3, 3]
    by_variant = load_experiment(write_toml(GOOD + "[variants.a]\nseed = 9\n[variants.b]\npayload_bytes = 64\n", "variant.toml"))
    assert [p.settings.workload.seed for p in by_variant.points][:2] == [9, 9]
    assert 9 not in [p.settings.workload.seed for p in by_variant.points][2:]


def test_point_ids_are_stable_and_ignore_the_output_folder(write_toml, tmp_path):
    path = write_toml(GOOD)
    a = load_experiment(path)
    b = load_experiment(path, out_dir=tmp_path / "elsewhere")
    assert [p.point_id for p in a.points] == [p.point_id for p in b.points]
    assert b.results_dir == tmp_path / "elsewhere" / "t"
    # the id is a hash of the settings: changing any setting changes it
    c = load_experiment(write_toml(GOOD.replace("duration_s = 4", "duration_s = 5"), "other.toml"))
    assert {p.point_id for p in a.points}.isdisjoint({p.point_id for p in c.points})
    # and it does not depend on how the file was written (key order, int vs float)
    d = load_experiment(write_toml(GOOD.replace("poll_interval_s = 0.5", "poll_interval_s = 0.50"), "same.toml"))
    assert [p.point_id for p in a.points] == [p.point_id for p in d.points]
    # a setting spelled out at its default value is the same point as one left out
    e = load_experiment(write_toml(GOOD.replace("[run]", "[run]\npollers = 1\nconditional = true"), "explicit.toml"))
    assert [p.point_id for p in a.points] == [p.point_id for p in e.points]
    assert point_id(a.points[0].settings) == a.points[0].point_id
    assert a.points[0].point_id in a.points[0].run_id


def test_seed_list_sweeps_replicas(write_toml):
    exp = load_experiment(write_toml(GOOD.replace("seed = 3", "seed = [1, 2, 3]")))
    assert len(exp) == 6
    assert sorted({p.params["seed"] for p in exp.points}) == [1, 2, 3]
    assert len({p.settings.workload.seed for p in exp.points}) == 6  # each replica's points derive their own


def test_styles_list_is_a_value_and_a_list_of_lists_sweeps(write_toml):
    one = load_experiment(write_toml("[run]\nstyles = ['polling']\n[workload]\nrate_per_s = 2\n"))
    assert len(one) == 1 and one.points[0].settings.styles == ("polling",)
    two = load_experiment(write_toml("[run]\nstyles = [['polling'], ['webhook', 'polling']]\n", "b.toml"))
    assert [p.settings.styles for p in two.points] == [("polling",), ("webhook", "polling")]


def test_consumers_sets_pollers_and_subscribers(write_toml):
    exp = load_experiment(write_toml("[run]\nconsumers = [1, 8]\n"))
    assert [(p.settings.pollers, p.settings.subscribers) for p in exp.points] == [(1, 1), (8, 8)]
    assert [p.params for p in exp.points] == [{"consumers": 1}, {"consumers": 8}]


def test_variants_multiply_the_grid(write_toml):
    exp = load_experiment(
        write_toml(
            "[workload]\nrate_per_s = [2.0, 4.0]\n[variants.plain]\n[variants.batched]\nbatch_max_events = 10\nstyles = ['webhook']\n"
        )
    )
    assert [p.params for p in exp.points] == [
        {"variant": "plain", "rate_per_s": 2.0},
        {"variant": "plain", "rate_per_s": 4.0},
        {"variant": "batched", "rate_per_s": 2.0},
        {"variant": "batched", "rate_per_s": 4.0},
    ]
    assert exp.points[2].settings.batch_max_events == 10 and exp.points[2].settings.styles == ("webhook",)


def test_identical_points_are_refused(write_toml):
    with pytest.raises(ConfigError, match="identical settings"):
        load_experiment(write_toml("[variants.a]\npollers = 1\n[variants.b]\n"))


def test_shipped_experiments_load():
    names = {p.stem for p in EXPERIMENTS.glob("*.toml")}
    assert {
        "quick",
        "wasted-polls",
        "latency-vs-poll-interval",
        "cost-vs-consumers",
        "payload-size",
        "bursty-traffic",
        "long-polling-and-batching",
    } <= names
    for path in EXPERIMENTS.glob("*.toml"):
        exp = load_experiment(path)
        assert exp.name == path.stem
        assert exp.question.endswith("?"), path
    wasted = load_experiment(EXPERIMENTS / "wasted-polls.toml")
    lambda_t = sorted(p.settings.workload.rate_per_s * p.settings.poll_interval_s for p in wasted.points)
    assert lambda_t == pytest.approx([0.1, 1.0, 10.0])
    for p in wasted.points:
        # the sizing note in the file: standard errors small enough for the bands
        t = p.settings.poll_interval_s
        polls = p.settings.workload.duration_s / t
        events = p.settings.workload.rate_per_s * p.settings.workload.duration_s
        empty = math.exp(-p.settings.workload.rate_per_s * t)
        assert math.sqrt(empty * (1 - empty) / polls) <= 0.025  # 0.05 is at least 2 standard errors
        assert 1 / math.sqrt(3 * events) <= 0.05  # 15 % is at least 3 standard errors of the mean delay
    assert len(load_experiment(EXPERIMENTS / "quick.toml")) == 2


def labkit(*args: str) -> Ran:
    return run_labkit(*args, cwd=REPO)


@pytest.mark.parametrize("command", ["sweep", "run"])
def test_cli_bad_file_is_one_line_exit_2(write_toml, command):
    path = write_toml("[workload]\nrate_per_s = -1\n", "bad.toml")
    proc = labkit(command, str(path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and "workload.rate_per_s" in lines[0] and "greater than 0" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_cli_bad_toml_and_missing_file_are_one_line(write_toml):
    for args in (["sweep", str(write_toml("[run\n", "broken.toml"))], ["sweep", "no/such/file.toml"]):
        proc = labkit(*args)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_run_refuses_a_grid_and_names_sweep(write_toml):
    path = write_toml(GOOD)
    proc = labkit("run", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 points" in lines[0] and "labkit sweep" in lines[0]
