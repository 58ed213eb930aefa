"""Requirements files: the examples load; a bad file is one line naming the file and the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labkit.errors import ConfigError
from labkit.report import Requirements, load_requirements
from labkit.report.requirements import DEFAULT_NAME, default_requirements
from tests.helpers.cli import labkit
from tests.helpers.report import COMPARE_RUN, EXAMPLES, REQUIREMENTS


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_load(name):
    req = load_requirements(REQUIREMENTS / f"{name}.toml")
    assert req.name and req.use_case
    assert req.name != DEFAULT_NAME


def test_the_examples_differ_where_it_matters():
    pay, nat, batch = (load_requirements(REQUIREMENTS / f"{n}.toml") for n in EXAMPLES)
    assert pay.consumers_can_expose_https and pay.data_sensitivity == "sensitive" and not pay.missed_events_tolerated
    assert not nat.consumers_can_expose_https
    assert batch.target_latency_p99_ms >= 3_600_000 and batch.event_rate_per_s >= 10


def test_a_file_stating_the_decisions_numbers_takes_defaults_for_the_rest(tmp_path):
    path = tmp_path / "minimal.toml"
    path.write_text("target_latency_p99_ms = 1000.0\nevent_rate_per_s = 1.0\nconsumers = 1\n")
    assert load_requirements(path) == Requirements()


def test_default_profile_takes_the_measured_rate():
    req = default_requirements(20.0, 3)
    assert req.name == DEFAULT_NAME and req.event_rate_per_s == 20.0 and req.consumers == 3


@pytest.mark.parametrize(
    "text, key, says",
    [
        ("latency = 5\n", "latency", "unknown setting"),
        ("[budget]\ngpus = 2\n", "budget.gpus", "unknown setting"),
        ('consumers = "many"\n', "consumers", "integer"),
        ('consumers_can_expose_https = "yes"\n', "consumers_can_expose_https", "boolean"),
        ("missed_events_tolerated = 1\n", "missed_events_tolerated", "boolean"),
        ('target_latency_p99_ms = "fast"\n', "target_latency_p99_ms", "number"),
        ("target_latency_p99_ms = true\n", "target_latency_p99_ms", "number"),
        ("consumers = 0\n", "consumers", "greater than or equal to 1"),
        ("target_latency_p99_ms = -5\n", "target_latency_p99_ms", "greater than 0"),
        ("event_rate_per_s = 0\n", "event_rate_per_s", "greater than 0"),
        ('burstiness = "sometimes"\n', "burstiness", "'steady' or 'bursty'"),
        ('data_sensitivity = "secret"\n', "data_sensitivity", "'public', 'internal' or 'sensitive'"),
        ('ordering = "strict"\n', "ordering", "'none', 'per-key' or 'total'"),
        ("[budget]\nservers = 0\n", "budget.servers", "greater than or equal to 1"),
        ("[budget]\nbandwidth_gb_per_month = -1\n", "budget.bandwidth_gb_per_month", "greater than 0"),
        ("budget = 5\n", "budget", "valid dictionary"),
        ('name = "   "\n', "name", "blank"),
    ],
)
def test_bad_value_is_one_line_naming_file_and_key(tmp_path, text, key, says):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_requirements(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: "), message
    assert says in message


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("consumers = = 3\n")
    with pytest.raises(ConfigError) as err:
        load_requirements(path)
    assert str(err.value).startswith(f"{path}: not valid TOML") and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such requirements file"):
        load_requirements(tmp_path / "nope.toml")


def test_requirements_are_immutable():
    req = Requirements()
    with pytest.raises(ValidationError, match="frozen"):
        req.consumers = 5  # type: ignore[misc]


# ---------------------------------------------------------------- through the command line


def test_cli_bad_requirements_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('consumers_can_expose_https = "maybe"\n')
    proc = labkit("report", str(COMPARE_RUN), "--requirements", str(bad), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(bad) in lines[0] and "consumers_can_expose_https" in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "out" / "report.html").exists()


@pytest.mark.parametrize(
    "args, names",
    [
        (["report"], "results"),
        (["report", "{tmp}/no-such-dir"], "no such results directory"),
        (["report", "{tmp}"], "holds no summary.json"),
        (["report", "{run}", "--requirements", "{tmp}/missing.toml"], "no such requirements file"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(tmp_path, args, names):
    args = [a.format(tmp=tmp_path, run=COMPARE_RUN) for a in args]
    proc = labkit(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert names in lines[0]
    assert proc.stdout == ""


def test_cli_unknown_schema_exit_2(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"schema_version": 99, "run_id": "x"}')
    proc = labkit("report", str(run))
    assert proc.returncode == 2
    assert "unknown schema_version 99" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
