"""Bad input to ``labkit capacity``: one line naming the problem, exit 2, no traceback, nothing run.

The bad-input cases call the command line's entry point in this process (the same ``main`` the
``labkit`` script runs; a subprocess per case cost a second of start-up each); the help test runs
the real script.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from labkit.cli.commands import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``labkit *args`` run in this process."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize(
    "args, names",
    [
        (["capacity", "nope"], "SCENARIO"),
        (["capacity", "polling", "--max-users", "-5"], "--max-users"),
        (["capacity", "polling", "--max-users", "0"], "--max-users"),
        (["capacity", "polling", "--workers", "-1"], "--workers"),
        (["capacity", "polling", "--duration", "1"], "--duration"),
        (["capacity", "polling", "--slo-p99-ms", "0"], "--slo-p99-ms"),
        (["capacity", "polling", "--interval", "-1"], "--interval"),
        (["capacity", "polling", "--step-users", "-3"], "--step-users"),
        (["capacity", "polling", "--max-users", "many"], "--max-users"),
        (["capacity"], "SCENARIO"),
        (["capacity", "polling", "--expect-workers", "-1"], "--expect-workers"),
        (["capacity", "polling", "--master-bind", "127.0.0.1"], "--master-bind"),
        (["capacity", "polling", "--master-bind", "127.0.0.1:5557"], "--master-bind"),
        (["capacity", "polling", "--master-bind", "example.com:5557"], "--master-bind"),
        (["capacity", "polling", "--master-bind", "127.0.0.1:70000"], "--master-bind"),
        (["capacity", "polling", "--server-bind", "0.0.0.0"], "--server-bind"),
        (["capacity", "polling", "--server-bind", "localhost"], "--server-bind"),
        (["capacity", "polling", "--workers-wait", "0"], "--workers-wait"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, names, tmp_path, capsys):
    code, out, err = run_cli([*args, "--out", str(tmp_path)], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert names.lower() in lines[0].lower()
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "capacity").exists()


@pytest.mark.parametrize(
    "args, names",
    [
        (["capacity-worker"], "--master"),
        (["capacity-worker", "--master", "nope"], "--master"),
        (["capacity-worker", "--master", "host:0"], "--master"),
        (["capacity-worker", "--master", "m:5557", "--scenario", "nope"], "--scenario"),
        (["capacity-worker", "--master", "m:5557", "--source", "m"], "--source"),
        (["capacity-worker", "--master", "m:5557", "--timeout", "0"], "--timeout"),
        (["capacity-server", "nope"], "ROLE"),
        (["capacity-server", "provider", "--bind", "0.0.0.0"], "--bind"),
        (["capacity-server", "receiver", "--bind", "127.0.0.1:8001"], "LABKIT_SECRET"),
    ],
)
def test_worker_and_server_bad_input_is_one_line_and_exit_2(args, names, capsys, monkeypatch):
    monkeypatch.delenv("LABKIT_SECRET", raising=False)
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and names.lower() in lines[0].lower(), err
    assert "Traceback" not in err


def test_help_says_what_binding_exposes():
    proc = subprocess.run([sys.executable, "-m", "labkit", "capacity", "--help"], check=False, capture_output=True, text=True, timeout=60)
    text = " ".join(proc.stdout.split())
    assert "--master-bind" in text and "unauthenticated, unencrypted" in text and "webhook secret" in text
    assert "--server-bind" in text and "exposes the lab servers' HTTP API" in text


@pytest.mark.parametrize(
    "args, names",
    [
        (["capacity-report"], "RESULTS_DIR"),
        (["capacity-report", "{missing}"], "no such directory"),
        (["capacity-report", "{empty}"], "locust_stats_history.csv"),
        (["capacity-report", "{empty}", "--scenario", "nope"], "--scenario"),
        (["capacity-report", "{empty}", "--max-users", "0"], "--max-users"),
        (["capacity-report", "{empty}", "--step-seconds", "-1"], "--step-seconds"),
    ],
)
def test_report_bad_input_is_one_line_and_exit_2(args, names, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in args]
    code, out, err = run_cli(args, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and names.lower() in lines[0].lower(), err
    assert "Traceback" not in err and out == ""
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize(
    "args, names",
    [
        (["capacity", "polling", "--server-bind", "192.0.2.1"], "--server-bind"),  # TEST-NET-1: on no host
        (["capacity", "polling", "--master-bind", "192.0.2.1:5557", "--expect-workers", "1"], "--master-bind"),
        (["capacity-worker", "--master", "127.0.0.1:5557", "--source", "192.0.2.1"], "--source"),
    ],
)
def test_an_address_not_on_this_host_is_one_line(args, names, tmp_path, capsys):
    """Issue 24, item 9: binding it failed 39 lines later, with servers already started."""
    code, out, err = run_cli([*args, "--out", str(tmp_path)] if args[0] == "capacity" else args, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and names in lines[0] and "not an address of this host" in lines[0], err
    assert not (tmp_path / "capacity").exists()


def test_an_audience_the_scenario_cannot_run_is_one_line():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "capacity", "webhook_ingest", "--audience", "per-consumer"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--audience" in lines[0] and "per-consumer" in lines[0], proc.stderr
