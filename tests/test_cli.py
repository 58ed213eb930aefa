"""Bad command-line input: one line naming the problem, exit 2, no traceback."""

import subprocess
import sys

import pytest


def labkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=60)


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


def test_help_lists_the_commands():
    proc = labkit("--help")
    assert proc.returncode == 0
    assert "compare" in proc.stdout and "serve" in proc.stdout
