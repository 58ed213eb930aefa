"""Experiments as files: a TOML file declares one run or a grid of runs.

    [experiment]                 name (results go to results/<name>/), description, question,
                                 seed (an int, or a list of ints to sweep replicas): the experiment's
                                 seed, from which each point derives its own (``point_seed``)
    [run]                        any RunSettings field; ``consumers = N`` sets pollers and subscribers;
                                 ``processes = N | "auto"`` sets consumer_processes
    [workload]                   any WorkloadSettings field
    [variants.<name>]            optional: named sets of overrides (any run or workload field)
    [network]                    optional: the network profile of every point (labkit.config.network: a
                                 shipped ``profile`` plus any of rtt_ms, jitter_ms, loss, rate_bps, ...);
                                 or ``network = "cross-region"`` / a spec string / a list of them in [run]
    [search]                     optional: how ``labkit served`` searches each variant's limit
                                 (``labkit.runs.served``; ``labkit sweep`` leaves it alone)
    ``tls = true`` (or ``[false, true]``) in [run] serves every hop over HTTPS.

Each point's workload seed derives from the experiment's seed and the point's
id, so no two points draw the same arrivals (their errors are independent); a
seed the file pins (``workload.seed``, in [workload] or in a variant) is used
as it is.

A list value means "sweep over these values" (for ``styles``, whose value is
itself a list, a list of lists sweeps). The grid is the cartesian product of
the swept keys, times the variants when there are any. Loading validates
everything up front: a bad file raises ``ConfigError`` with one line naming
the file, the key and what is allowed, before any server starts.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labkit.config import SAFE_NAME_PATTERN, SAFE_NAME_RULE, NetworkProfile, RunSettings, WorkloadSettings, describe_error
from labkit.config.files import read_capped
from labkit.config.network import network_from
from labkit.errors import ConfigError
from labkit.runs.campaign import Point, point_id

NAME_PATTERN = re.compile(SAFE_NAME_PATTERN)
MAX_POINTS = 500
# An experiment file is a few KB of TOML; anything this big is a mistake (or /dev/zero).
MAX_FILE_BYTES = 1024 * 1024

TABLES = ("experiment", "run", "workload", "variants", "network", "search")
HEADER_KEYS = ("name", "description", "question", "seed")
# Set by the experiment's name and by --out, never in the file.
RUN_RESERVED = ("workload", "experiment", "out_dir")
RUN_KEYS = tuple(k for k in RunSettings.model_fields if k not in RUN_RESERVED) + ("consumers", "processes")
WORKLOAD_KEYS = tuple(WorkloadSettings.model_fields)
# Settings whose value is itself a list: a list of lists sweeps them.
_LIST_VALUED = {
    name for model in (RunSettings, WorkloadSettings) for name, f in model.model_fields.items() if typing.get_origin(f.annotation) is tuple
}


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file and the grid it declares."""

    name: str
    path: Path
    description: str
    question: str
    points: tuple[Point, ...] = field(repr=False)
    swept: tuple[str, ...] = ()
    out_dir: Path = Path("results")
    search: dict[str, Any] = field(default_factory=dict, repr=False)  # the [search] table as written

    def __len__(self) -> int:
        return len(self.points)

    @property
    def results_dir(self) -> Path:
        """Where the experiment's points and its table go: <out_dir>/<name>/."""
        return self.out_dir / self.name


def point_seed(experiment_seed: int, pid: str) -> int:
    """A point's own workload seed: a hash of the experiment's seed and the point's id (31 bits, stable)."""
    digest = hashlib.sha256(f"{experiment_seed}:{pid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def load_experiment(path: str | Path, *, out_dir: str | Path = "results") -> Experiment:
    """Read, validate and expand an experiment file; raise ``ConfigError`` with one line if it is bad."""
    path = Path(path)
    where = str(path)
    raw = _read_capped(path, where)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: invalid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {_one_line(str(exc))}") from None
    return _parse(doc, path, out_dir)


def _read_capped(path: Path, where: str) -> bytes:
    """The file's bytes, if it is a regular file of at most MAX_FILE_BYTES (a device or FIFO never ends)."""
    return read_capped(path, where, "an experiment file", MAX_FILE_BYTES)


def parse_experiment(doc: dict[str, Any], path: str | Path = "<dict>", out_dir: str | Path = "results") -> Experiment:
    """Validate and expand an experiment given as a mapping (as a TOML file would load); ``path`` names it in errors."""
    return _parse(doc, Path(path), out_dir)


def _parse(doc: dict[str, Any], path: Path, out_dir: str | Path) -> Experiment:
    """Validate the file in phases (tables, header, axes, variants, values, points), each naming its key."""
    where = str(path)
    _only(doc, TABLES, where, "", "table")
    for table in TABLES:
        if table in doc and not isinstance(doc[table], dict):
            raise ConfigError(f"{where}: {table}: must be a table ([{table}])")
    header = doc.get("experiment", {})
    name, texts = _header(header, path, where)

    run = dict(doc.get("run", {}))
    workload = dict(doc.get("workload", {}))
    _only(run, RUN_KEYS, where, "run.")
    if "network" in doc:
        if "network" in run:
            raise ConfigError(f"{where}: network: set the network once, as a [network] table or as run.network")
        run["network"] = doc["network"]
        from_table = True
    else:
        from_table = False
    _only(workload, WORKLOAD_KEYS, where, "workload.")
    names: dict[tuple[str, str], str] = {}
    pinned = "seed" in workload  # a seed the file states for the workload is used as it is
    if "seed" in header:
        if "seed" in workload:
            raise ConfigError(f"{where}: experiment.seed: set the seed once, here or as workload.seed")
        workload["seed"] = header["seed"]
        names[("workload", "seed")] = "experiment.seed"
    if from_table:
        names[("run", "network")] = "network"

    axes, fixed = _axes(run, workload, names, where)
    variants = _variants(doc, where)
    _check_values(axes, fixed, variants, names, where)
    points = _points(axes, fixed, variants, names, where, name=name, out_dir=out_dir, path=path, derive_seed=not pinned)
    swept = (("variant",) if variants else ()) + tuple(key for _, key, _ in axes)
    return Experiment(
        name=name,
        path=path,
        description=texts["description"],
        question=texts["question"],
        points=tuple(points),
        swept=swept,
        out_dir=Path(out_dir),
        search=dict(doc.get("search", {})),
    )


def _header(header: dict[str, Any], path: Path, where: str) -> tuple[str, dict[str, str]]:
    """The experiment's name (the file's stem by default) and its description and question."""
    _only(header, HEADER_KEYS, where, "experiment.")
    name = header.get("name", path.stem)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{where}: experiment.name: a name is one folder: {SAFE_NAME_RULE} (got {name!r})")
    texts: dict[str, str] = {}
    for key in ("description", "question"):
        value = header.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: experiment.{key}: must be a string")
        texts[key] = value
    return name, texts


Axis = tuple[str, str, list[Any]]


def _axes(
    run: dict[str, Any], workload: dict[str, Any], names: dict[tuple[str, str], str], where: str
) -> tuple[list[Axis], dict[str, dict[str, Any]]]:
    """Every swept key as (table, key, values), and the fixed keys per table as they are."""
    axes: list[Axis] = []
    fixed: dict[str, dict[str, Any]] = {"run": {}, "workload": {}}
    for table, values in (("run", run), ("workload", workload)):
        for key, value in values.items():
            label = names.get((table, key), f"{table}.{key}")
            if not _is_sweep(key, value):
                fixed[table][key] = value
                continue
            if not value:
                raise ConfigError(f"{where}: {label}: an empty list sweeps nothing; give at least one value")
            seen: list[Any] = []
            for v in value:
                if v in seen:
                    raise ConfigError(f"{where}: {label}: {v!r} is listed twice")
                seen.append(v)
            axes.append((table, key, value))
    return axes, fixed


def _variants(doc: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """The named override tables, each checked for its name, its keys and that it sweeps nothing."""
    variants: dict[str, Any] = doc.get("variants", {})
    if "variants" in doc and not variants:
        raise ConfigError(f"{where}: variants: declares no variant; add [variants.<name>] tables or remove it")
    for vname, overrides in variants.items():
        if not NAME_PATTERN.fullmatch(vname):
            raise ConfigError(f"{where}: variants.{vname}: a variant name is {SAFE_NAME_RULE}")
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}: variants.{vname}: must be a table of settings")
        _only(overrides, RUN_KEYS + WORKLOAD_KEYS, where, f"variants.{vname}.")
        for key, value in overrides.items():
            if _is_sweep(key, value):
                raise ConfigError(f"{where}: variants.{vname}.{key}: a variant sets one value; sweep in [run] or [workload]")
    return variants


def _check_values(
    axes: list[Axis],
    fixed: dict[str, dict[str, Any]],
    variants: dict[str, dict[str, Any]],
    names: dict[tuple[str, str], str],
    where: str,
) -> None:
    """Check each value on its own first, so the message names the key that is wrong."""
    base = {t: {**fixed[t], **{k: vals[0] for tt, k, vals in axes if tt == t}} for t in fixed}
    _settings(base, where, None, names)
    for table, key, values in axes:
        for v in values:
            data = {t: dict(d) for t, d in base.items()}
            data[table][key] = v
            _settings(data, where, None, names, trial=(table, key, v))
    for vname, overrides in variants.items():
        _settings(_with_variant(base, overrides), where, f"variants.{vname}.", {})


def _points(
    axes: list[Axis],
    fixed: dict[str, dict[str, Any]],
    variants: dict[str, dict[str, Any]],
    names: dict[tuple[str, str], str],
    where: str,
    *,
    name: str,
    out_dir: str | Path,
    path: Path,
    derive_seed: bool = True,
) -> list[Point]:
    """The grid: every combination of the swept values, times the variants; no two points alike.

    Unless the file pins it, each point's seed derives from the experiment's seed and the point's id
    (``point_seed``), so points draw independent arrivals; the id is then taken of the final settings.
    """
    combos = list(itertools.product(*(vals for _, _, vals in axes)))
    n_points = len(combos) * max(1, len(variants))
    if n_points > MAX_POINTS:
        raise ConfigError(f"{where}: declares {n_points} points; at most {MAX_POINTS} per experiment (shorten the lists)")
    points: list[Point] = []
    ids: dict[str, dict[str, Any]] = {}
    plan: list[tuple[str | None, dict[str, Any]]] = list(variants.items()) if variants else [(None, {})]
    for vname, overrides in plan:
        for combo in combos:
            data = {t: dict(d) for t, d in fixed.items()}
            params: dict[str, Any] = {}
            if vname is not None:
                params["variant"] = vname
            for (table, key, _), v in zip(axes, combo):
                data[table][key] = v
                params[key] = list(v) if isinstance(v, (list, tuple)) else v
            data = _with_variant(data, overrides)
            prefix = f"variants.{vname}." if vname else ""
            settings = _settings(data, where, prefix, names if not prefix else {}, experiment=name, out_dir=out_dir, path=path)
            if derive_seed and "seed" not in overrides:
                wl = settings.workload.model_copy(update={"seed": point_seed(settings.workload.seed, point_id(settings))})
                settings = settings.model_copy(update={"workload": wl})
            pid = point_id(settings)
            if pid in ids:
                raise ConfigError(f"{where}: points {ids[pid]} and {params} have identical settings; make each point differ")
            ids[pid] = params
            points.append(Point(experiment=name, params=params, settings=settings, point_id=pid))
    return points


def _is_sweep(key: str, value: Any) -> bool:
    if not isinstance(value, list):
        return False
    if key in _LIST_VALUED:
        return bool(value) and all(isinstance(v, list) for v in value) or value == []
    return True


def _only(table: dict[str, Any], allowed: tuple[str, ...], where: str, prefix: str, what: str = "setting") -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: {prefix}{key}: unknown {what}; allowed: {', '.join(allowed)}")


def _with_variant(data: dict[str, dict[str, Any]], overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {t: dict(d) for t, d in data.items()}
    for key, value in overrides.items():
        table = "workload" if key in WORKLOAD_KEYS else "run"
        if key == "consumers":
            out["run"].pop("pollers", None)
            out["run"].pop("subscribers", None)
        elif key in ("pollers", "subscribers"):
            out["run"].pop("consumers", None)
        elif key in ("processes", "consumer_processes"):  # a variant's value replaces the base's, whichever name it used
            out["run"].pop("consumer_processes" if key == "processes" else "processes", None)
        out[table][key] = value
    return out


def _settings(
    data: dict[str, dict[str, Any]],
    where: str,
    prefix: str | None,
    names: dict[tuple[str, str], str],
    *,
    trial: tuple[str, str, Any] | None = None,
    experiment: str = "experiment",
    out_dir: str | Path = "results",
    path: Path | None = None,
) -> RunSettings:
    """RunSettings from the file's tables, strictly typed (TOML has types: "10" is not a number).

    ``names`` maps (table, key) to the key as the file spells it; ``trial`` is
    the (table, key, value) being checked, quoted back when it is at fault.
    """
    run = dict(data["run"])
    workload = dict(data["workload"])
    if "consumers" in run:
        n = run.pop("consumers")
        clash = [k for k in ("pollers", "subscribers") if k in run]
        if clash:
            raise ConfigError(f"{where}: {prefix or 'run.'}consumers: sets pollers and subscribers; do not also set {clash[0]}")
        run["pollers"] = run["subscribers"] = n
        names = {**names, ("run", "pollers"): f"{prefix or 'run.'}consumers", ("run", "subscribers"): f"{prefix or 'run.'}consumers"}
    if "processes" in run:
        if "consumer_processes" in run:
            raise ConfigError(f"{where}: {prefix or 'run.'}processes: sets consumer_processes; do not also set consumer_processes")
        run["consumer_processes"] = run.pop("processes")
        names = {**names, ("run", "consumer_processes"): f"{prefix or 'run.'}processes"}
    for key in list(run):
        if key in _LIST_VALUED and isinstance(run[key], list):
            run[key] = tuple(run[key])
    if "network" in run and not isinstance(run["network"], NetworkProfile):
        # a shipped name, a spec string or a table; its own one-line error names the key
        run["network"] = network_from(run["network"], source=f"{where}: {names.get(('run', 'network'), (prefix or 'run.') + 'network')}")
    if path is not None and isinstance(workload.get("trace_path"), str):
        trace = Path(workload["trace_path"])
        if not trace.is_absolute():
            workload["trace_path"] = str(path.parent / trace)
    payload = {**run, "workload": workload, "experiment": experiment, "out_dir": str(out_dir)}
    try:
        settings = RunSettings.model_validate(payload, strict=True)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc, prefix, names, trial)}") from None
    from labkit import styles  # the style modules load the servers' code: only when a file is read

    settings = styles.resolve(settings)  # a file that names no styles runs the default comparison
    try:
        styles.check(settings)
    except ConfigError as exc:
        key = names.get(("run", "styles"), f"{prefix or 'run.'}styles")
        raise ConfigError(f"{where}: {key}{str(exc).removeprefix('styles')}") from None
    wl = settings.workload
    if wl.arrival != "trace" and wl.rate_per_s * wl.duration_s < 1:
        key = names.get(("workload", "duration_s"), f"{prefix or 'workload.'}duration_s")
        raise ConfigError(f"{where}: {key}: rate_per_s x duration_s is under one event; raise either")
    return settings


def _describe(exc: ValidationError, prefix: str | None, names: dict[tuple[str, str], str], trial: tuple[str, str, Any] | None) -> str:
    """Name the key as the file spells it: run.poll_interval_s, workload.rate_per_s, variants.x.key."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    table = "run"
    if loc and loc[0] == "workload":
        table, loc = "workload", loc[1:]
    key = loc[0] if loc else ""
    full = describe_error(exc)
    msg = full.split(": ", 1)[1] if err["loc"] and ": " in full else full
    if not key:
        return f"{prefix.rstrip('.') if prefix else table}: {msg}"
    name = names.get((table, key)) or (f"{prefix}{key}" if prefix else f"{table}.{key}")
    if trial is not None and (trial[0], trial[1]) == (table, key):
        return f"{name}: {msg} (got {trial[2]!r})"
    if trial is not None and trial[1] == "consumers" and key in ("pollers", "subscribers"):
        return f"{name}: {msg} (got {trial[2]!r})"
    return f"{name}: {msg}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
