"""The container files parse and run only commands that exist.

Docker is not needed: the Dockerfile, docker-compose.yml and deploy/k8s/*.yaml
are read as text and YAML, and every command line in them is parsed by the
real parser it would meet in the container (labkit's CLI, or Locust's with the
scenario's locustfiles loaded), so an option renamed in the code breaks here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from labkit.cli.commands import app, register_commands

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "labkit:latest"
APP_DIR = "/app/"  # the Dockerfile's WORKDIR: the repository's files land below it

LOCUST_PARSE = r"""
import json, sys
from locust.util.load_locustfile import load_locustfile
from locust import argument_parser
args = json.loads(sys.argv[1])
files = args[args.index("-f") + 1].split(",")
for f in files:
    load_locustfile(f)  # registers the scenario's and the shape's options
argument_parser.parse_options(args)  # exits 2 on an unknown option
print("ok")
"""


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "deploy" / "k8s").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def containers(doc: dict) -> list[dict]:
    return (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []


def repo_path(container_path: str) -> Path:
    assert container_path.startswith(APP_DIR), container_path
    return ROOT / container_path[len(APP_DIR) :]


def check_labkit_args(args: list[str]) -> None:
    """Parse the arguments with labkit's own CLI (no command runs)."""
    register_commands()
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="labkit")
    command = group.get_command(ctx, args[0])
    assert command is not None, f"labkit has no command {args[0]!r}"
    command.make_context(args[0], list(args[1:]), parent=ctx)  # a UsageError on an unknown option or a bad value


def check_locust_args(args: list[str]) -> None:
    local = []
    for a in args:
        local.append(",".join(str(repo_path(p)) for p in a.split(",")) if a.startswith(APP_DIR) else a)
    for f in local[local.index("-f") + 1].split(","):
        assert Path(f).is_file(), f
    proc = subprocess.run([sys.executable, "-c", LOCUST_PARSE, json.dumps(local)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-1500:]


def expand(value: str) -> str:
    """Compose's ${VAR:-default} with the default."""
    if value.startswith("${") and ":-" in value:
        return value[value.index(":-") + 2 : -1]
    return value


def test_dockerfile_installs_labkit_and_ships_the_scenarios():
    text = (ROOT / "Dockerfile").read_text()
    assert "\nFROM python:3.11-slim\n" in text
    assert "RUN pip install ." in text
    assert "COPY scenarios ./scenarios" in text and "LABKIT_SCENARIOS_DIR=/app/scenarios" in text
    assert 'ENTRYPOINT ["labkit"]' in text and "USER labkit" in text
    for copied in ("pyproject.toml", "README.md", "labkit", "scenarios"):
        assert (ROOT / copied).exists(), copied


def test_compose_has_the_distributed_layout():
    services = compose()["services"]
    assert set(services) == {"provider", "receiver", "master", "worker", "report"}
    for name, svc in services.items():
        assert svc["image"] == IMAGE and svc["build"] == ".", name
        assert "ports" not in svc, f"{name}: nothing is published outside the compose network"
    assert services["worker"]["command"][:3] == ["capacity-worker", "--master", "master:5557"]
    assert "http://provider:8000" in services["master"]["command"]


@pytest.mark.parametrize("name", ["provider", "receiver", "worker", "report"])
def test_compose_labkit_commands_parse(name):
    check_labkit_args([expand(a) for a in compose()["services"][name]["command"]])


@pytest.mark.slow  # a Locust process parses the arguments; test_a_bad_command_would_be_caught stays fast
def test_compose_locust_master_command_parses():
    svc = compose()["services"]["master"]
    assert svc["entrypoint"] == ["locust"]
    check_locust_args([expand(a) for a in svc["command"]])


@pytest.mark.slow  # a Locust process per manifest
def test_kubernetes_manifests_use_the_image_and_existing_commands():
    docs = k8s_documents()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "labkit-provider"), ("Deployment", "labkit-receiver"), ("Job", "labkit-locust-master"),
            ("Deployment", "labkit-locust-worker"), ("Service", "labkit-locust-master")} <= kinds  # fmt: skip
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    checked = 0
    for doc in docs:
        for c in containers(doc):
            assert c["image"] == IMAGE
            if c.get("command") == ["locust"]:
                check_locust_args(c["args"])
                host = c["args"][c["args"].index("--host") + 1]
                assert host.split("//")[1].split(":")[0] in services
            else:
                check_labkit_args(c["args"])
            checked += 1
    assert checked == 5
    worker = next(d for d in docs if d["metadata"]["name"] == "labkit-locust-worker")
    master_host = containers(worker)[0]["args"][2].split(":")[0]
    assert master_host in services


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# the report must judge the run with the plan the master ran: the same steps, ceiling, limit and SLO
SAME_PLAN = [("-u", "--max-users"), ("-t", "--duration"), ("--step-users", "--step-users"), ("--step-seconds", "--step-seconds"),
             ("--slo-p99-ms", "--slo-p99-ms"), ("--slo-failure-ratio", "--max-failure-ratio"), ("--poll-interval", "--interval")]  # fmt: skip


def test_the_report_is_given_the_plan_the_master_ran():
    services = compose()["services"]
    master = [expand(a) for a in services["master"]["command"]]
    report = [expand(a) for a in services["report"]["command"]]
    assert services["report"]["profiles"] == ["report"] and report[:2] == ["capacity-report", "/results"]
    docs = {d["metadata"]["name"]: containers(d)[0]["args"] for d in k8s_documents() if d["kind"] == "Job"}
    k8s_master, k8s_report = docs["labkit-locust-master"], docs["labkit-capacity-report"]
    for m, r in SAME_PLAN:
        assert _option(master, m).removesuffix("s") == _option(report, r), (m, r)
        assert _option(k8s_master, m).removesuffix("s") == _option(k8s_report, r), (m, r)


@pytest.mark.slow
def test_a_bad_command_would_be_caught():
    with pytest.raises(Exception, match="no-such-option|No such option"):
        check_labkit_args(["capacity-worker", "--master", "m:5557", "--no-such-option"])
    with pytest.raises(AssertionError):
        check_locust_args(["-f", "/app/scenarios/polling.py", "--no-such-option", "1"])
