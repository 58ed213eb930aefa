"""Issue 24, item 10: ``--rate nan`` is "not a number"; network-spec errors name the user's key and unit,
cut what they echo, and refuse ``rate`` with ``rate_up``/``rate_down``."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import RunSettings, WorkloadSettings, validated
from labkit.config.network import parse_network
from labkit.errors import ConfigError
from tests.helpers.cli import labkit

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_number_is_not_a_number(value: str) -> None:
    with pytest.raises(ConfigError, match=f"rate_per_s: {value} is not a number"):
        validated(WorkloadSettings, {"rate_per_s": float(value)})
    with pytest.raises(ConfigError, match="is not a number"):
        validated(RunSettings, {"poll_interval_s": float(value)})


def test_the_cli_says_rate_nan_is_not_a_number(tmp_path: Path) -> None:
    proc = labkit("compare", "--rate", "nan", "--no-report", "--out", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip() == "labkit: error: --rate: nan is not a number; give a finite number"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("rtt=20s", "rtt: 20s is out of range; rtt must be at most 10 s"),
        ("jitter=6000ms", "jitter: 6000ms is out of range; jitter must be at most 5 s"),
        ("rto=61s", "rto: 61s is out of range; rto must be at most 60 s"),
        ("rate=0.5kbit", "rate: 0.5kbit is out of range; rate must be from 1 kbit/s to 100 gbit/s"),
        ("rate=1mbit,rate_up=2mbit", "rate sets both directions; give rate alone, or rate_up without it"),
        ("rate_down=1mbit,rate=2mbit", "or rate_down without it"),
    ],
)
def test_spec_errors_name_the_users_key_and_unit(spec: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_network(spec, "--network")
    assert str(err.value) == f"--network: {says}" or says in str(err.value), str(err.value)
    assert "_ms" not in str(err.value) and "_bps" not in str(err.value)


@pytest.mark.parametrize("spec", ["x" * 5000, "rtt=" + "9" * 5000 + "ms", "k" * 3000 + "=1", "rtt=" + "z" * 5000])
def test_an_echoed_name_or_value_is_cut(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_network(spec, "--network")
    assert len(str(err.value)) < 400 and "…" in str(err.value), str(err.value)
