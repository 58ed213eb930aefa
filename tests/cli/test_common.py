"""Bad command-line input: one line naming the problem, exit 2, no traceback.

The cases run the command line's entry point in this process (``tests.helpers.cli``);
``test_the_real_executable_exits_2_with_one_line`` checks the same contract on a real process.
"""

from pathlib import Path

import pytest

from tests.helpers.cli import labkit, labkit_process


@pytest.mark.parametrize(
    "args, names",
    [
        (["compare", "--rate", "-1"], "--rate"),
        (["compare", "--rate", "0"], "--rate"),
        (["compare", "--poll-interval", "0"], "--poll-interval"),
        (["compare", "--duration", "-5"], "--duration"),
        (["compare", "--payload-bytes", "3"], "--payload-bytes"),
        (["compare", "--arrival", "sometimes"], "--arrival"),
        (["compare", "--bogus"], "--bogus"),
        (["compare", "--rate", "fast"], "--rate"),
        (["no-such-command"], "no-such-command"),
        (["serve", "receiver", "--secret", "not-a-secret"], "whsec_"),
    ],
)
def test_bad_option_is_one_line_and_exit_2(args, names):
    proc = labkit(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert names in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_the_real_executable_exits_2_with_one_line():
    """The process contract itself: ``python -m labkit`` with bad input exits 2, one line on stderr, nothing on stdout."""
    for args, names in ((["compare", "--rate", "-1"], "--rate"), (["no-such-command"], "no-such-command")):
        proc = labkit_process(*args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and names in lines[0] and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == ""


def test_help_lists_the_commands():
    proc = labkit("--help")
    assert proc.returncode == 0
    assert "compare" in proc.stdout and "serve" in proc.stdout


def test_version_prints_the_package_version():
    from labkit._version import __version__

    proc = labkit("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"labkit {__version__}"


QUICK_TOML = "scenarios/experiments/quick.toml"
FIXTURE_RESULTS = "tests/fixtures/results"


def _one_point_experiment(tmp_path) -> str:
    path = tmp_path / "one.toml"
    path.write_text(
        '[experiment]\nname = "one"\n[run]\nstyles = ["webhook"]\n[workload]\nrate_per_s = 5.0\nduration_s = 0.5\n',
        encoding="utf-8",
    )
    return str(path)


@pytest.mark.parametrize("command", ["compare", "sweep", "run", "report"])
@pytest.mark.parametrize("where", ["proc", "file"])
def test_unwritable_out_is_refused_before_running(command, where, tmp_path):
    """An --out that cannot be a folder (under /proc, or an existing file) is one line, exit 2, nothing run."""
    target = "/proc/labkit-forbidden/out"
    if where == "file":
        existing = tmp_path / "a-file"
        existing.write_text("not a folder", encoding="utf-8")
        target = str(existing)
    args = {
        "compare": ["compare", "--duration", "0.5", "--no-report", "--out", target],
        "sweep": ["sweep", QUICK_TOML, "--out", target],
        "run": ["run", _one_point_experiment(tmp_path), "--out", target],
        "report": ["report", FIXTURE_RESULTS, "-o", target],
    }[command]
    proc = labkit(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert target in lines[0] and "--out" in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_out_folder_is_created_when_missing_and_checked(tmp_path):
    """The check creates a missing folder (with its parents) and refuses a file or an unwritable place."""
    from labkit.cli.common import writable_dir
    from labkit.errors import ConfigError

    target = tmp_path / "new" / "deeper"
    assert writable_dir(target) == target and target.is_dir()
    assert list(target.iterdir()) == [], "the probe file is removed"
    existing = tmp_path / "a-file"
    existing.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is a file"):
        writable_dir(existing, "-o/--out")
    with pytest.raises(ConfigError, match="cannot create or write"):
        writable_dir(Path("/proc/labkit-forbidden"))
