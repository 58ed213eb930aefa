"""This machine's own costs per style, measured once on loopback: the base every model adds the network to.

A model that takes its base from the run it judges cannot fail: whatever the
run measured, less the profile's terms, becomes the base, and the model then
"agrees". So the base comes from a calibration instead: short loopback runs of
every style, measured once per machine and labkit version (``labkit.lab.calibrate``
measures; ``labkit calibrate`` measures again), cached in the user's cache
folder with the machine's fingerprint. A run's model block names its base's
source (``calibration <id>``, or ``none`` when there is no calibration), and
nothing the judged run measured is a model input.

A calibration holds, per style (its registered name), named costs in seconds;
each style says which costs it measures and uses (``Style.calibration_costs``).

``LABKIT_CALIBRATION`` overrides the cache: a path to a calibration file (used
as it is, whatever machine made it: tests inject one this way), or ``none``
for no calibration (every base is 0 and says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit._version import __version__
from labkit.errors import ConfigError
from labkit.wire import jsonsafe

SCHEMA_VERSION = 1
ENV = "LABKIT_CALIBRATION"
NONE = "none"


@dataclass(frozen=True)
class Calibration:
    """One machine's measured loopback costs: ``costs[style][name]`` in seconds, and how they were measured."""

    id: str
    fingerprint: dict[str, Any]
    labkit_version: str
    created: str
    costs: dict[str, dict[str, float]]
    measured_with: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def source(self) -> str:
        """What a model block names as its base's source."""
        return f"calibration {self.id}"

    def cost(self, style: str, name: str) -> float | None:
        """One cost of one style in seconds, or None when the calibration did not measure it."""
        value = self.costs.get(style, {}).get(name)
        return float(value) if value is not None else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("path")
        return {"schema_version": SCHEMA_VERSION, **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | None = None) -> Calibration:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"{path or 'calibration'}: schema_version {data.get('schema_version')!r}; this labkit reads {SCHEMA_VERSION}")
        try:
            costs = {str(s): {str(k): float(v) for k, v in c.items()} for s, c in dict(data["costs"]).items()}
            return cls(
                id=str(data["id"]),
                fingerprint=dict(data["fingerprint"]),
                labkit_version=str(data["labkit_version"]),
                created=str(data["created"]),
                costs=costs,
                measured_with=dict(data.get("measured_with") or {}),
                path=path,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path or 'calibration'}: not a calibration file ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Base:
    """What a style's model takes from the calibration: the source's name and the costs used (seconds)."""

    source: str
    costs: dict[str, float]

    def get(self, name: str) -> float:
        """A cost in seconds; 0 when there is none (the model then says its source is ``none``)."""
        return self.costs.get(name, 0.0)

    def block(self) -> dict[str, Any]:
        """The model block's ``base``: where it came from and each cost in milliseconds."""
        return {"source": self.source, "costs_ms": {f"{k.removesuffix('_s')}_ms": v * 1000 for k, v in self.costs.items()}}


def base_for(calibration: Calibration | None, style: str, names: tuple[str, ...]) -> Base:
    """A style's base: the named costs from the calibration, or ``none`` (all 0) when any is missing."""
    if calibration is None:
        return Base(NONE, {})
    costs = {n: calibration.cost(style, n) for n in names}
    if any(v is None for v in costs.values()):
        return Base(NONE, {})
    return Base(calibration.source, {k: float(v) for k, v in costs.items() if v is not None})


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_kb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def fingerprint() -> dict[str, Any]:
    """What makes this machine's costs its own: CPU, cores usable here, memory, kernel, Python."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - Linux has it
        usable = os.cpu_count() or 1
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "mem_total_kb": _mem_total_kb(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def fingerprint_id(fp: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """The user's cache folder for labkit (``$XDG_CACHE_HOME/labkit`` or ``~/.cache/labkit``): never under results/."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "labkit"


def cache_path() -> Path:
    """This machine's and this labkit's calibration file."""
    return cache_dir() / f"calibration-{fingerprint_id(fingerprint())}-{__version__}.json"


def read(path: Path) -> Calibration:
    """A calibration file; ``ConfigError`` (one line) when it cannot be read or is not one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{ENV}: {path}: no such calibration file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read a calibration ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a calibration file")
    return Calibration.from_dict(data, str(path))


def cached() -> Calibration | None:
    """The cached calibration of this machine and labkit version, or None (none yet, or made elsewhere)."""
    path = cache_path()
    if not path.exists():
        return None
    try:
        cal = read(path)
    except ConfigError:
        return None  # a damaged cache is measured again, not an error
    if cal.fingerprint != fingerprint() or cal.labkit_version != __version__:
        return None
    return cal


def save(cal: Calibration) -> Path:
    """Write ``cal`` to this machine's cache file (atomically) and return the path."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(jsonsafe.dumps(cal.as_dict(), indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def override() -> tuple[bool, Calibration | None]:
    """(True, what to use) when ``LABKIT_CALIBRATION`` is set: the file it names, or None for ``none``."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return False, None
    if value.lower() == NONE:
        return True, None
    return True, read(Path(value))


def new_id(costs: dict[str, dict[str, float]], fp: dict[str, Any], created: str) -> str:
    """A short id from what was measured, where and when."""
    blob = json.dumps({"costs": costs, "fingerprint": fp, "created": created}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]
