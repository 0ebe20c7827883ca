"""docker-compose.yml is valid Compose and agrees with the repository (no Docker engine runs here).

It is validated by ``check-jsonschema`` against the Compose Specification's schema that it ships
(``--builtin-schema vendor.compose-spec``; nothing outside the repository is read), then cross-checked:
every built service has its Dockerfile and the Dockerfile's sources exist, every mounted file exists, every
command is a real `canaryflow` command line, and ports and environment agree with
:mod:`canaryflow.settings`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer
import yaml

from canaryflow.cli import app
from canaryflow.settings import Settings
from canaryflow.temporal.names import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]
CHECK = [str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema", "vendor.compose-spec"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    out: dict[int, int] = {}
    for spec in service.get("ports", []):
        host, container = str(spec).rsplit(":", 1)
        out[int(container.split("/")[0])] = int(host.rsplit(":", 1)[-1])
    return out


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHECK, str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_validates_against_the_compose_schema() -> None:
    done = _check(ROOT / "docker-compose.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation done" in done.stdout


def test_the_schema_check_is_real(compose: dict[str, Any], tmp_path: Path) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["ports"] = {"not": "a list"}
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    done = _check(tmp_path / "docker-compose.yml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "services.gateway.ports" in done.stdout, done.stdout


def test_the_production_shape_and_the_demo_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "temporal", "temporal-admin-tools", "temporal-ui", "prometheus", "grafana",
                 "gateway", "worker"):
        assert name in services and "profiles" not in services[name], name
    for name in ("sim", "loadgen", "gateway-demo", "demo-setup"):
        assert services[name]["profiles"] == ["demo"], name
    assert services["temporal-admin-tools"]["restart"] == "no"
    assert services["worker"]["depends_on"]["temporal-admin-tools"]["condition"] == \
        "service_completed_successfully"


def test_built_services_have_their_dockerfile_and_sources(compose: dict[str, Any]) -> None:
    built = {n: s for n, s in compose["services"].items() if "build" in s}
    assert {"gateway", "worker", "sim", "loadgen"} <= set(built)
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for name, service in built.items():
        build = service["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        name_of_file = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        dockerfile = context / name_of_file
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        text = dockerfile.read_text()
        assert re.search(r"^FROM python:3\.11-slim", text, re.M)
        assert re.search(r'^ENTRYPOINT \["canaryflow"\]', text, re.M)
        assert re.search(r"^USER (?!root)\S+", text, re.M), "the image must not run as root"
        for line in re.findall(r"^COPY (.+)$", text, re.M):
            for source in line.split()[:-1]:
                assert (context / source).exists(), f"{dockerfile}: COPY source {source} is missing"
                assert source not in ignored, f"{source} is both copied and in .dockerignore"


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in named, f"{name} uses undeclared volume {source}"


def test_commands_are_real_canaryflow_command_lines(compose: dict[str, Any]) -> None:
    """Each built service's command parses with the CLI's own parser (options and all), without running."""
    root: Any = typer.main.get_command(app)  # typer's (vendored) click Group
    checked = 0
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        if "entrypoint" in service:  # a shell script of `canaryflow ...` commands joined by &&
            parts = [shlex.split(part) for part in " ".join(service["command"]).split("&&")]
            assert all(part[0] == "canaryflow" for part in parts), name
            lines = [part[1:] for part in parts]
        else:
            lines = [list(service["command"])]
        for args in lines:
            ctx = root.make_context("canaryflow", list(args), resilient_parsing=False)
            cmd_name, cmd, rest = root.resolve_command(ctx, args)
            assert cmd is not None, f"{name}: unknown command {cmd_name}"
            cmd.make_context(str(cmd_name), rest, parent=ctx)  # raises UsageError on an unknown option
            for path in (a for a in rest if a.endswith(".yaml")):
                assert (ROOT / path).is_file(), f"{name}: {path} is not in the repository (copied to /app)"
            checked += 1
    assert checked >= 7


def test_ports_and_environment_agree_with_settings(compose: dict[str, Any]) -> None:
    defaults = Settings()
    services = compose["services"]
    for name, service in services.items():
        for key, value in _env(service).items():
            if key.startswith("CANARYFLOW_"):
                field = key.removeprefix("CANARYFLOW_").lower()
                assert field in Settings.model_fields, f"{name}: {key} is not a setting"
                Settings(**{field: value})  # the value parses
    env = _env(services["worker"])
    assert env["CANARYFLOW_TASK_QUEUE"] == defaults.task_queue
    assert env["CANARYFLOW_TEMPORAL_NAMESPACE"] == defaults.temporal_namespace
    temporal_port = int(defaults.temporal_address.rsplit(":", 1)[1])
    assert env["CANARYFLOW_TEMPORAL_ADDRESS"] == f"temporal:{temporal_port}"
    assert _published(services["temporal"]) == {temporal_port: temporal_port}
    prom_port = urlparse(defaults.prometheus_url).port
    assert urlparse(env["CANARYFLOW_PROMETHEUS_URL"]).port == prom_port
    assert _published(services["prometheus"]) == {prom_port: prom_port}
    assert env["CANARYFLOW_DB_URL"].startswith("postgresql+psycopg://")
    assert urlparse(env["CANARYFLOW_DB_URL"]).hostname == "postgres"
    gw = _env(services["gateway"])
    assert int(gw["CANARYFLOW_GATEWAY_PORT"]) == defaults.gateway_port
    assert _published(services["gateway"]) == {defaults.gateway_port: defaults.gateway_port}
    assert _published(services["sim"]) == {defaults.sim_port: defaults.sim_port}
    assert _published(services["temporal-ui"]) == {8080: 8233}
    demo = _env(services["gateway-demo"])
    assert demo["OPENAI_BASE_URL"] == f"http://sim:{defaults.sim_port}/v1"
    assert demo["ANTHROPIC_BASE_URL"] == f"http://sim:{defaults.sim_port}"
    assert str(defaults.sim_port) in services["sim"]["command"]


def test_search_attributes_are_registered(compose: dict[str, Any]) -> None:
    script = "\n".join(compose["services"]["temporal-admin-tools"]["command"])
    for key in SEARCH_ATTRIBUTES:  # the worker's own list (Keyword / Double)
        assert f"{key.name}={key._metadata_type}" in script


def test_prometheus_scrapes_the_gateway_and_loads_the_rules(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"gateway:{Settings().gateway_port}" in targets
    assert "localhost:9090" in targets
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in mounts
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/canaryflow.json").read_text())
    for panel in dashboard["panels"]:
        if panel.get("type") != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
