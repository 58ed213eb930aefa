"""Requirements state the network and TLS; the shipped ones set realistic values."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config.network import SHIPPED
from labkit.errors import ConfigError
from labkit.report.requirements import Requirements, load_requirements

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "network", "tls"),
    [("payments-provider", "cross-region", True), ("mobile-app-behind-nat", "mobile", True), ("internal-batch-sync", "same-region", False)],
)
def test_the_shipped_requirements_state_their_network(name: str, network: str, tls: bool) -> None:
    req = load_requirements(ROOT / "scenarios" / "requirements" / f"{name}.toml")
    assert req.network is SHIPPED[network]
    assert req.tls is tls
    assert dict(req.as_table())["network"].startswith(network)


def test_not_stated_means_loopback_without_tls() -> None:
    req = Requirements()
    assert req.network is None and req.network_profile is SHIPPED["loopback"] and req.tls is False
    assert dict(req.as_table())["network"] == "not stated (loopback)"


def test_a_spec_string_and_a_table_both_work(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    stated = "target_latency_p99_ms = 500\nevent_rate_per_s = 1\nconsumers = 10\n"  # what every requirements file states
    path.write_text(stated + 'network = "rtt=80ms,loss=0.5%"\ntls = true\n')
    req = load_requirements(path)
    assert (req.network_profile.rtt_ms, req.network_profile.loss, req.tls) == (80, 0.005, True)
    path.write_text(stated + '[network]\nprofile = "mobile"\nloss = "2%"\n')
    req = load_requirements(path)
    assert (req.network_profile.rtt_ms, req.network_profile.loss) == (60, 0.02)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('network = "moon"\n', "network: unknown profile 'moon'; choose from loopback"),
        ('network = "rtt=80"\n', "network: rtt: '80' is not a duration"),
        ('network = "rate=0.1kbit"\n', "network: rate: 0.1kbit is out of range"),
        ('network = "loss=80%"\n', "network: loss: 80% is out of range"),
        ("network = 3\n", "network: must be a profile name"),
        ('[network]\nprofile = "moon"\n', "network: profile: unknown profile 'moon'"),
        ('tls = "yes"\n', "tls: Input should be a valid boolean"),
    ],
)
def test_bad_network_or_tls_is_one_line_naming_file_and_key(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_requirements(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and says in msg, msg
