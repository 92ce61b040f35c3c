"""docker-compose.yml, as `docker-compose config` resolves it, agrees with the code it runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devstack.services import SERVICES
from health.settings import HealthSettings
from tests.deploy.composefile import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    SECRETS,
    compose_services,
    run_config,
)

EXPECTED_PORTS = {"gateway": 8000, "notifier": 8001, "health": 8002, "worker": 8003}


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def services(empty_env_file: Path) -> dict[str, Any]:
    """The resolved compose services, with a value of its own for every required variable."""
    return compose_services(empty_env_file, env={name: f"{name.lower()}-value" for name in SECRETS})


def app_services(services: dict[str, Any]) -> dict[str, Any]:
    """The services built from deploy/Dockerfile as a service of their own (not the migration)."""
    return {
        name: service
        for name, service in services.items()
        if "build" in service and service.get("command", [])[-1] == name
    }


def default_port(package: str) -> int:
    """The port a service's `__main__` passes to `shared.serving.serve(name, port, ...)`."""
    path = ROOT / "services" / package / package / "__main__.py"
    ports = {
        node.args[1].value
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "serve"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, int)
    }
    assert len(ports) == 1, f"{package}: expected one literal port passed to serve(), found {ports}"
    return ports.pop()


def target_port(port: str | dict[str, Any]) -> int:
    """The container port of a published port, in short ("127.0.0.1:8003:8003") or long form."""
    if isinstance(port, dict):
        return int(port["target"])
    return int(port.rsplit(":", 1)[-1].split("/")[0])


def test_compose_runs_the_four_services_a_migration_and_the_datastores(
    services: dict[str, Any],
) -> None:
    # Services of a profile (test_compose_profiles.py) run only when it is asked for.
    always = {name for name, service in services.items() if "profiles" not in service}
    assert always == {"redis", "postgres", "migrate", "prometheus", *EXPECTED_PORTS}
    assert set(app_services(services)) == set(EXPECTED_PORTS)


def test_every_service_runs_a_package_under_services_with_a_main_module(
    services: dict[str, Any],
) -> None:
    for name, service in app_services(services).items():
        assert service["command"] == ["python", "-m", name]
        assert service["build"]["args"]["SERVICE"] == name
        assert (ROOT / "services" / name / name / "__main__.py").is_file(), name


def test_migration_runs_shared_migrations_and_gates_every_service(
    services: dict[str, Any],
) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "shared.migrations"]
    assert (ROOT / "shared" / "shared" / "migrations" / "__main__.py").is_file()
    assert migrate["restart"] == "no"
    for name, service in app_services(services).items():
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert conditions == {
            "redis": "service_healthy",
            "postgres": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name


def test_ports_in_compose_are_the_default_ports_in_the_code(services: dict[str, Any]) -> None:
    for name, service in app_services(services).items():
        expected = EXPECTED_PORTS[name]
        assert default_port(name) == expected, name
        assert int(service["build"]["args"]["HTTP_PORT"]) == expected, name
        assert [target_port(port) for port in service["ports"]] == [expected], name
        assert service["environment"]["HTTP_HOST"] == "0.0.0.0"
    assert {spec.name: spec.port for spec in SERVICES} == EXPECTED_PORTS


def test_health_probes_the_compose_services_on_their_ports(services: dict[str, Any]) -> None:
    environment = services["health"]["environment"]
    defaults = HealthSettings()
    # Workers are found by their heartbeats in Redis, not by a URL.
    for name in ("gateway", "notifier"):
        url = urlsplit(environment[f"HEALTH_{name.upper()}_URL"])
        assert (url.hostname, url.port) == (name, EXPECTED_PORTS[name])
        assert urlsplit(getattr(defaults, f"{name}_url")).port == EXPECTED_PORTS[name]


def test_the_consoles_gateway_reads_health_by_its_compose_name(services: dict[str, Any]) -> None:
    # The default, 127.0.0.1, is the gateway's own container under compose.
    url = urlsplit(services["gateway"]["environment"]["CONSOLE_HEALTH_URL"])
    assert (url.hostname, url.port) == ("health", EXPECTED_PORTS["health"])


def test_services_reach_redis_and_postgres_by_their_compose_names(
    services: dict[str, Any],
) -> None:
    for name, service in app_services(services).items():
        environment = service["environment"]
        assert environment["REDIS_URL"] == "redis://:redis_password-value@redis:6379/0", name
        database = urlsplit(environment["DATABASE_URL"])
        assert (database.scheme, database.hostname) == ("postgresql+asyncpg", "postgres"), name
        assert database.password == "postgres_password-value", name
        assert environment["JWT_SECRET"] == "jwt_secret-value", name


def test_redis_keeps_jobs_across_restarts_and_never_evicts_them(
    services: dict[str, Any],
) -> None:
    command = services["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options == {
        "--appendonly": "yes",
        "--appendfsync": "everysec",
        "--maxmemory-policy": "noeviction",
        "--requirepass": "redis_password-value",
    }
    assert services["redis"]["volumes"]
    assert services["worker"]["stop_grace_period"] == "30s"


@pytest.mark.parametrize("secret", SECRETS)
def test_config_fails_when_a_secret_is_unset(secret: str, empty_env_file: Path) -> None:
    env = {name: f"{name.lower()}-value" for name in SECRETS if name != secret}
    completed = run_config(env, empty_env_file)
    assert completed.returncode != 0
    assert f"set {secret}" in completed.stderr


def test_compose_file_holds_no_secret_default() -> None:
    text = COMPOSE_FILE.read_text()
    for secret in SECRETS:
        uses = re.findall(rf"\$\{{{secret}([^}}]*)\}}", text)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), (secret, uses)


def test_env_example_documents_every_variable_compose_reads() -> None:
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert used == documented
