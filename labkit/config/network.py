"""Network profiles: the round trip, jitter, loss and bandwidth a run puts between consumer and provider.

A profile is a run setting. It comes from a shipped name (``cross-region``),
from a spec string (``rtt=80ms,jitter=5ms,loss=0.5%,rate=10mbit``, optionally
starting from a shipped name: ``mobile,loss=2%``), or from a TOML table
(``[network]`` in experiments and requirements). The user-space proxy
(``labkit.servers.netproxy``) applies it to every consumer <-> provider hop and
``labkit.model.network`` adds its terms to each style's latency.

Directions: ``up`` is from the side that opens the connection (a poller, or the
webhook dispatcher) to the side that listens (the provider, or the receiver);
``down`` is the way back. ``rate`` sets both.

The shipped numbers are representative values read off public measurements
(named in each profile's ``source``), rounded; they are not quotes of any one
table, and the paths they describe vary by provider, region pair and hour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from labkit.config import (
    MAX_LOSS,
    MAX_RATE_BPS,
    MAX_RTT_MS,
    MIN_RATE_BPS,
    NetworkProfile,
    describe_error,
)
from labkit.errors import ConfigError

TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
RATE_UNITS = {"bps": 1.0, "bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
SPEC_KEYS = ("rtt", "jitter", "loss", "rate", "rate_up", "rate_down", "rto")
SPEC_HELP = "a spec such as rtt=80ms,jitter=5ms,loss=0.5%,rate=10mbit (keys: " + ", ".join(SPEC_KEYS) + ")"


_CLOUD_RTT = (
    "representative value from published inter-region round-trip tables: AWS Network Manager "
    "Infrastructure Performance and the community table cloudping.co (AWS inter-region pings), 2024"
)


def _profile(**fields: Any) -> NetworkProfile:
    return NetworkProfile.model_validate(fields)


SHIPPED: dict[str, NetworkProfile] = {
    p.name: p
    for p in (
        _profile(
            name="loopback",
            source="this machine's loopback interface, nothing added (the lab's default; about 0.1 ms round trip measured)",
        ),
        _profile(
            name="same-region",
            rtt_ms=1.0,
            jitter_ms=0.2,
            source="representative value: AWS documents availability zones in one region as connected with "
            "'single-digit millisecond' latency (Regions and Availability Zones documentation, 2024); "
            "cross-zone pings in the cloudping.co and AWS Infrastructure Performance tables are about 1 ms",
        ),
        _profile(
            name="cross-region",
            rtt_ms=65.0,
            jitter_ms=2.0,
            source="US East (N. Virginia) <-> US West (Oregon), about 60-70 ms; " + _CLOUD_RTT,
        ),
        _profile(
            name="intercontinental",
            rtt_ms=150.0,
            jitter_ms=5.0,
            loss=0.001,
            source="US East (N. Virginia) <-> Asia Pacific (Tokyo), about 140-160 ms; "
            + _CLOUD_RTT
            + "; the 0.1 % loss is an assumed public-internet figure, not from those tables",
        ),
        _profile(
            name="mobile",
            rtt_ms=60.0,
            jitter_ms=15.0,
            loss=0.005,
            rate_up_bps=5e6,
            rate_down_bps=20e6,
            source="representative 4G/5G values: Opensignal mobile network experience reports (2023-2024) put "
            "typical 4G round trips at about 40-70 ms; Ookla Speedtest Global Index (2024) medians are tens of "
            "Mbit/s down and under 15 Mbit/s up; rates here are set below those medians for a loaded cell, and "
            "the 0.5 % loss and 15 ms jitter are assumptions, not published medians",
        ),
    )
}


def _one_line(exc: ValidationError, source: str) -> ConfigError:
    return ConfigError(describe_error(exc, prefix=f"{source}: "))


def _time_ms(key: str, value: str, source: str) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*", value)
    if not m or (m.group(2) not in TIME_UNITS and not (m.group(2) == "" and float(m.group(1)) == 0)):
        raise ConfigError(f"{source}: {key}: {shown(value)} is not a duration; use a number with a unit (us, ms, s), e.g. {key}=80ms")
    return float(m.group(1)) * TIME_UNITS.get(m.group(2), 1.0)


def _loss(value: str, source: str) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*", value)
    if not m:
        raise ConfigError(f"{source}: loss: {shown(value)} is not a share; use a percentage (0.5%) or a fraction (0.005) from 0 to 0.5")
    share = float(m.group(1)) / (100 if m.group(2) else 1)
    if share > MAX_LOSS:
        raise ConfigError(f"{source}: loss: {cut(value)} is out of range; allowed 0 to 50% (a fraction 0 to 0.5)")
    return share


def _rate_bps(key: str, value: str, source: str) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*", value)
    if not m or m.group(2) not in RATE_UNITS:
        raise ConfigError(
            f"{source}: {key}: {shown(value)} is not a rate; use a number with a unit (bps, kbit, mbit, gbit), e.g. {key}=10mbit"
        )
    bps = float(m.group(1)) * RATE_UNITS[m.group(2)]
    if not MIN_RATE_BPS <= bps <= MAX_RATE_BPS:
        raise ConfigError(f"{source}: {key}: {cut(value)} is out of range; {key} must be from 1 kbit/s to 100 gbit/s")
    return bps


# The most each time key may be, in ms: the profile's own bounds, said in the user's key and unit.
TIME_LIMITS_MS = {"rtt": MAX_RTT_MS, "jitter": MAX_RTT_MS / 2, "rto": 60_000.0}
SHOWN = 40  # characters of a user's text echoed in an error


def cut(text: str) -> str:
    """``text`` for an error line: at most ``SHOWN`` characters, cut with an ellipsis."""
    text = text.strip()
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def shown(text: str) -> str:
    return repr(cut(text))


def _ms_text(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def _bounded_ms(key: str, value: str, source: str) -> float:
    ms = _time_ms(key, value, source)
    if ms > TIME_LIMITS_MS[key]:
        raise ConfigError(f"{source}: {key}: {cut(value)} is out of range; {key} must be at most {_ms_text(TIME_LIMITS_MS[key])}")
    return ms


def _spec_fields(items: list[tuple[str, str]], source: str) -> dict[str, Any]:
    """Spec keys with unit-bearing strings -> NetworkProfile fields."""
    keys = {key for key, _ in items}
    if "rate" in keys and keys & {"rate_up", "rate_down"}:
        both = sorted(keys & {"rate_up", "rate_down"})
        raise ConfigError(f"{source}: rate sets both directions; give rate alone, or {' and '.join(both)} without it")
    out: dict[str, Any] = {}
    for key, value in items:
        if key in TIME_LIMITS_MS:
            out[f"{key}_ms"] = _bounded_ms(key, value, source)
        elif key == "loss":
            out["loss"] = _loss(value, source)
        elif key == "rate":
            out["rate_up_bps"] = out["rate_down_bps"] = _rate_bps(key, value, source)
        elif key in ("rate_up", "rate_down"):
            out[f"{key}_bps"] = _rate_bps(key, value, source)
        else:
            raise ConfigError(f"{source}: unknown key {shown(key)}; allowed: {', '.join(SPEC_KEYS)}")
    return out


def shipped(name: str, source: str = "network") -> NetworkProfile:
    """A shipped profile by name; an unknown name names the ones there are."""
    try:
        return SHIPPED[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"{source}: unknown profile {shown(name)}; choose from {', '.join(SHIPPED)}, or {SPEC_HELP}") from None


def _build(base: NetworkProfile | None, fields: dict[str, Any], source: str) -> NetworkProfile:
    if base is not None and not fields:
        return base
    data = base.model_dump() if base is not None else {}
    if fields:  # changed numbers: no longer the shipped profile, and not its citation
        data["source"] = "given by the user" + (f", starting from {base.name!r}" if base is not None else "")
        data["name"] = "custom"
    data.update(fields)
    try:
        profile = NetworkProfile.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, source) from None
    if fields and "name" not in fields:
        profile = profile.model_copy(update={"name": profile.spec()})
    return profile


def parse_network(text: str, source: str = "network") -> NetworkProfile:
    """A profile from a shipped name or a spec string such as ``rtt=80ms,jitter=5ms,loss=0.5%,rate=10mbit``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{source}: empty; choose from {', '.join(SHIPPED)}, or {SPEC_HELP}")
    tokens = [t.strip() for t in text.strip().split(",")]
    base: NetworkProfile | None = None
    if "=" not in tokens[0]:
        if tokens[0].lower() in SPEC_KEYS:
            raise ConfigError(f"{source}: malformed {shown(tokens[0])}: a key needs a value; {SPEC_HELP}")
        base = shipped(tokens[0], source)
        tokens = tokens[1:]
    items: list[tuple[str, str]] = []
    seen: set[str] = set()
    for tok in tokens:
        key, sep, value = tok.partition("=")
        key = key.strip().lower()
        if not sep or not key or not value.strip():
            raise ConfigError(f"{source}: malformed {shown(tok)}; {SPEC_HELP}")
        if key in seen:
            raise ConfigError(f"{source}: {key} given twice")
        seen.add(key)
        items.append((key, value.strip().lower()))
    return _build(base, _spec_fields(items, source), source)


def network_from_table(table: Mapping[str, Any], source: str = "network") -> NetworkProfile:
    """A profile from a TOML table: ``profile`` (a shipped base), spec keys as strings, or field names as numbers.

    ``{profile = "mobile", loss = "2%"}``, ``{rtt = "80ms", rate = "10mbit"}`` and
    ``{rtt_ms = 80, loss = 0.005}`` all work; an unknown key is an error.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: must be a profile name, a spec string or a table")
    data = dict(table)
    base = None
    if "profile" in data:
        name = data.pop("profile")
        if not isinstance(name, str):
            raise ConfigError(f"{source}.profile: must be a name: {', '.join(SHIPPED)}")
        base = shipped(name, f"{source}.profile")
    spec_items = []
    for key in SPEC_KEYS:
        if key in data:
            value = data.pop(key)
            if key == "loss" and isinstance(value, (int, float)) and not isinstance(value, bool):
                data["loss"] = float(value)
                if value > MAX_LOSS or value < 0:
                    raise ConfigError(f"{source}.loss: {value} is out of range; allowed a fraction 0 to 0.5 (or '0.5%')")
                continue
            if not isinstance(value, str):
                example = '"10mbit"' if "rate" in key else '"80ms"'
                raise ConfigError(f"{source}.{key}: must be a string with a unit, e.g. {key} = {example}")
            spec_items.append((key, value.strip().lower()))
    fields = {**_spec_fields(spec_items, source), **data}
    return _build(base, fields, source)


def network_from(value: str | Mapping[str, Any] | NetworkProfile | None, source: str = "network") -> NetworkProfile:
    """Whatever a setting holds (a name, a spec string, a table, a profile, or nothing = loopback) as a profile."""
    if value is None:
        return SHIPPED["loopback"]
    if isinstance(value, NetworkProfile):
        return value
    if isinstance(value, str):
        return parse_network(value, source)
    return network_from_table(value, source)
