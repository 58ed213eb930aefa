"""``labkit served``: the search per variant over a fake prober, its settings and judgement, and one real search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from labkit.capacity.limits import Probe
from labkit.config import RunSettings
from labkit.consumers.streams import fleet_capacity
from labkit.errors import ConfigError
from labkit.lab.measures import cpu_shares
from labkit.runs.experiments import parse_experiment
from labkit.runs.served import (
    SearchSettings,
    consumers_cap,
    judge,
    open_files_cause,
    probe_settings,
    run_probe,
    search_settings,
    served_rows,
    served_search,
    variant_settings,
)
from labkit.servers import openfiles
from labkit.servers.procs import core_plan
from labkit.styles import names

REPO = Path(__file__).resolve().parents[2]
POLL = "polling"


def _doc(search: dict[str, Any] | None = None) -> dict[str, Any]:
    from labkit.styles import get

    pull = next(n for n in names() if not _push(n))
    push = next(n for n in names() if _push(n) and not get(n).needs_public_endpoint)  # a stream style
    return {
        "experiment": {"name": "served-test", "seed": 11},
        "run": {"drain_timeout_s": 10, "rate_limit_per_s": 0.0},
        "workload": {"arrival": "constant", "rate_per_s": 2.0, "duration_s": 3.0},
        "variants": {"pull": {"styles": [pull], "poll_interval_s": 0.5}, "push": {"styles": [push]}},
        "search": {"start": 100, "max_consumers": 1000, "reference": "pull", **(search or {})},
    }


def _push(name: str) -> bool:
    from labkit.styles import get

    return get(name).direction == "push"


def test_each_variant_gets_its_own_search_and_the_ratio_range(tmp_path: Path) -> None:
    exp = parse_experiment(_doc({"tolerance": 0.1, "max_probes": 20}), out_dir=tmp_path)
    limits = {"pull": 300, "push": 900}

    def prober(settings: RunSettings, out: Path, extra: dict[str, Any]) -> Probe:
        name = extra["params"]["variant"]
        assert settings.provider_core and settings.pollers == extra["params"]["consumers"]
        return Probe(settings.pollers, settings.pollers <= limits[name], detail={"why": "fake"})

    doc = served_search(exp, search_settings(exp), prober=prober)
    assert doc["schema_version"] == 1
    for name, limit in limits.items():
        v = doc["variants"][name]
        assert v["limit"] <= limit < v["upper"] and v["within_tolerance"] and not v["lower_bound"]
        assert v["held"]["load"] == v["limit"] and v["failed"]["load"] == v["upper"]
    r = doc["ratios"]["push"]
    assert r["over"] == "pull" and r["low"] <= 3.0 <= r["high"]
    assert (tmp_path / "served-test" / "served.json").is_file()
    assert json.loads((Path(doc["results_dir"]) / "served.json").read_text())["variants"].keys() == limits.keys()


def test_the_time_budget_is_shared_and_a_fleet_out_of_cpu_is_a_lower_bound(tmp_path: Path) -> None:
    exp = parse_experiment(_doc({"time_budget_s": 100, "max_probes": 50}), out_dir=tmp_path)
    now = [0.0]

    def prober(settings: RunSettings, out: Path, extra: dict[str, Any]) -> Probe:
        now[0] += 10.0
        n = settings.pollers
        return Probe(n, n <= 500, clients_saturated=n > 500, seconds=10.0)

    doc = served_search(exp, search_settings(exp), prober=prober, clock=lambda: now[0])
    assert now[0] <= 100.0
    assert all(len(v["probes"]) <= 5 for v in doc["variants"].values())  # 50 s each, 10 s a probe
    v = doc["variants"]["pull"]
    assert [p["load"] for p in v["probes"]] == [100, 200, 400, 800, 600]
    assert v["limited_by"] == "time budget" and not v["within_tolerance"]
    assert v["lower_bound"] and v["failed"]["clients_saturated"]  # the run that failed had its fleet out of CPU


def test_a_probe_past_the_providers_open_files_names_that_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli.served import render_served

    exp = parse_experiment(_doc({"tolerance": 0.1, "max_probes": 20, "max_consumers": 40_000}), out_dir=tmp_path)
    cause = open_files_cause("provider", 20_000)

    def prober(settings: RunSettings, out: Path, extra: dict[str, Any]) -> Probe:
        n = settings.pollers
        if extra["params"]["variant"] == "pull":
            return Probe(n, n <= 300, detail={"why": "fake p99"})
        if n <= 19_500:
            return Probe(n, True, detail={"why": "fake p99", "provider_cpu_share": 0.3, "fleet_cpu_share": 0.4})
        return Probe(n, False, detail={"why": "not served"}, cause=cause)  # stopped before its workload: no CPU measured

    doc = served_search(exp, search_settings(exp), prober=prober)
    push, pull = doc["variants"]["push"], doc["variants"]["pull"]
    assert push["limit"] <= 19_500 < push["upper"] and push["within_tolerance"] and not push["lower_bound"]
    assert push["limited_by"] == cause == "the provider's open-files limit (20000 per process)"
    assert push["label"].endswith(f"set by {cause})") and push["failed"]["cause"] == cause
    assert pull["limited_by"] == "system"  # a latency limit stays one
    assert doc["ratios"]["push"]["low"] is not None and doc["ratios"]["push"]["high"] is not None
    row = next(r for r in served_rows(doc) if r["variant"] == "push")
    assert (row["limited_by"], row["provider_cpu_share"], row["fleet_cpu_share"]) == (cause, 0.3, 0.4)  # the held run's CPU
    render_served(doc)
    printed = capsys.readouterr().out
    assert f"set by: {cause}" in printed and "set by: the failed run's latency or loss (fake p99)" in printed


def test_the_search_maximum_is_the_fleets_capacity_not_the_providers_open_files() -> None:
    s = SearchSettings()
    assert s.maximum() == min(consumers_cap(), fleet_capacity()) and s.maximum() > openfiles.connections_per_process()
    assert s.maximum_why() in ("the consumer fleet's capacity", "the run settings' cap")
    assert SearchSettings(max_consumers=500).maximum_why() == "the file's search.max_consumers"


@pytest.mark.slow  # a real run of 200 streams against a provider allowed 150 open files: a few seconds
def test_a_real_probe_past_the_providers_open_files_ends_at_once_and_says_why(tmp_path: Path) -> None:
    push = next(n for n in names() if _push(n) and not __import__("labkit.styles").styles.get(n).needs_public_endpoint)
    settings = RunSettings.model_validate(
        {
            "styles": [push],
            "pollers": 200,
            "provider_open_files": 150,
            "workload": {"rate_per_s": 2.0, "duration_s": 2.0, "arrival": "constant"},
            "drain_timeout_s": 10,
            "rate_limit_per_s": 0,
        }
    )
    probe = run_probe(settings, tmp_path / "n200", 1000.0, {})
    assert not probe.held and probe.cause == open_files_cause("provider", 150)
    files = probe.detail["open_files"]
    assert files["role"] == "provider" and files["limit"] == 150 and files["connected"] < files["requested"] == 200
    assert not psutil.Process().children(recursive=True)  # every process of the run stopped


def test_probe_settings_set_the_count_and_the_core_plan() -> None:
    base = RunSettings(styles=(POLL,), poll_interval_s=0.9)
    s = probe_settings(base, 3000, True)
    assert (s.pollers, s.subscribers, s.provider_core, s.consumer_processes) == (3000, 3000, True, "auto")
    assert probe_settings(RunSettings(styles=(POLL,), consumer_processes=2), 10, True).consumer_processes == 2  # the file's own
    assert probe_settings(base, 10, False).consumer_processes == 1
    big = probe_settings(base, 16_000, True)  # beyond the webhook's subscriptions cap: pollers and streams only
    assert big.pollers == 16_000 and big.subscribers == 10_000


@pytest.mark.parametrize(
    ("block", "held", "why"),
    [
        ({"latency_ms": {"p99": 900.0}, "lost": 0, "publish_errors": 0, "drained": True}, True, "p99 900 ms"),
        ({"latency_ms": {"p99": 1200.0}, "lost": 0, "publish_errors": 0, "drained": True}, False, "p99 1200 ms > 1000"),
        ({"latency_ms": {"p99": 100.0}, "lost": 3, "publish_errors": 0, "drained": False}, False, "3 deliveries lost"),
        ({"latency_ms": {"p99": 100.0}, "lost": 0, "publish_errors": 1, "drained": True}, False, "1 publishes refused"),
        ({"latency_ms": {"p99": 100.0}, "lost": 0, "publish_errors": 0, "drained": False}, False, "did not drain"),
    ],
)
def test_a_run_held_only_within_the_bound_with_nothing_lost(block: dict[str, Any], held: bool, why: str) -> None:
    ok, reason = judge(block, 1000.0)
    assert ok is held and why in reason


def test_bad_search_tables_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="search.factor"):
        search_settings(parse_experiment(_doc({"factor": 1.0}), out_dir=tmp_path))
    with pytest.raises(ConfigError, match="search: no variant 'nope'"):
        search_settings(parse_experiment(_doc({"reference": "nope"}), out_dir=tmp_path))
    with pytest.raises(ConfigError, match="search.start"):
        search_settings(parse_experiment(_doc({"start": 5000}), out_dir=tmp_path))
    with pytest.raises(ConfigError, match="search.bogus"):
        search_settings(parse_experiment(_doc({"bogus": 1}), out_dir=tmp_path))


def test_the_shipped_file_searches_every_variant() -> None:
    exp = parse_experiment(
        __import__("tomllib").loads((REPO / "scenarios/experiments/clients-served.toml").read_text()),
        REPO / "scenarios/experiments/clients-served.toml",
    )
    s = search_settings(exp)
    assert s.latency_bound_ms == 1000 and s.tolerance == 0.10 and s.provider_core
    assert set(variant_settings(exp)) == {"polling", "long-polling", "sse", "websocket"}
    assert variant_settings(exp)["polling"].poll_interval_s == 0.9


def test_core_plan_gives_the_provider_one_core_and_the_rest_to_the_fleets() -> None:
    plan = core_plan(True, frozenset({0, 1, 2, 3}))
    assert plan.applied and plan.cores_for("provider") == {3} and plan.cores_for("streams") == {0, 1, 2}
    one = core_plan(True, frozenset({0}))
    assert not one.applied and one.cores_for("provider") is None and "1 usable core" in one.reason
    assert core_plan(False, frozenset({0, 1})).cores_for("poller") is None


def test_cpu_shares_name_the_side_that_ran_out() -> None:
    pinned = core_plan(True, frozenset({0, 1})).describe()
    fleet = cpu_shares(2.0, 19.0, 20.0, pinned, "auto")
    assert fleet["fleet_share"] == pytest.approx(0.95) and fleet["fleet_saturated"] and fleet["limited_by"] == "fleet"
    prov = cpu_shares(19.0, 2.0, 20.0, pinned, 1)
    assert prov["provider_saturated"] and prov["limited_by"] == "provider"
    busy = cpu_shares(2.0, 5.0, 20.0, pinned, 1, wait_s=(1.0, 14.0))  # the fleet got a quarter of its core and waited for the rest
    assert busy["fleet_share"] == pytest.approx(0.25) and busy["fleet_demand"] == pytest.approx(0.95)
    assert busy["fleet_saturated"] and busy["limited_by"] == "fleet" and busy["fleet_wait_share"] == pytest.approx(0.7)
    shared = cpu_shares(2.0, 19.0, 20.0, core_plan(False, frozenset({0, 1})).describe(), 2)
    assert shared["fleet_cores"] == 2 and shared["fleet_share"] == pytest.approx(0.475) and shared["limited_by"] is None


@pytest.mark.slow
def test_a_small_real_search_ends_with_its_bracketing_runs(tmp_path: Path) -> None:
    toml = tmp_path / "tiny.toml"
    pull = next(n for n in names() if not _push(n))
    toml.write_text(
        '[experiment]\nname = "tiny"\nseed = 11\n[run]\ndrain_timeout_s = 10\nrate_limit_per_s = 0.0\n'
        '[workload]\narrival = "constant"\nrate_per_s = 2.0\nduration_s = 3.0\n'
        f'[variants.pull]\nstyles = ["{pull}"]\npoll_interval_s = 0.5\n'
        "[search]\nlatency_bound_ms = 1000\nstart = 2\nmax_consumers = 4\nmax_probes = 3\ntime_budget_s = 300\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "labkit", "served", str(toml), "--out", str(tmp_path / "out"), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    v = doc["variants"]["pull"]
    assert v["limit"] == 4 and v["lower_bound"] and v["limited_by"] == "maximum"  # p99 ~ 0.5 s: every count held
    assert [p["load"] for p in v["probes"]] == [2, 4]
    for p in v["probes"]:
        assert p["held"] and p["lost"] == 0 and p["p99_ms"] <= 1000
        assert p["provider_cpu_share"] is not None and p["fleet_cpu_share"] is not None
        assert Path(p["results_dir"], "summary.json").is_file()
    summary = json.loads(Path(v["held"]["results_dir"], "summary.json").read_text())
    cpu = summary["styles"][pull]["cpu"]
    assert cpu["pinned"] is (len(__import__("os").sched_getaffinity(0)) >= 2)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["served", "nope.toml"], "no such experiment file"),
        (["served", "scenarios/experiments/clients-served.toml", "--variants", "nope"], "--variants: no variant 'nope'"),
        (["served", "scenarios/experiments/clients-served.toml", "--budget", "-5"], "search.time_budget_s"),
        (["served", "scenarios/experiments/clients-served.toml", "--max-probes", "0"], "search.max_probes"),
    ],
)
def test_bad_served_input_is_one_line_and_exit_2(
    args: list[str], names: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from labkit.cli.commands import main

    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and names in err
    assert not list(tmp_path.iterdir())  # nothing ran
