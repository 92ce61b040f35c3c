"""How services are launched: their environment, and what a failed start says."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.services import (
    SERVICES,
    ServiceError,
    ServiceProcess,
    ServiceSpec,
    service_environment,
)

PORTS = {"gateway": 9100, "notifier": 9101, "health": 9102, "worker": 9103}


def _environment(name: str) -> dict[str, str]:
    spec = next(spec for spec in SERVICES if spec.name == name)
    return service_environment(
        spec,
        PORTS,
        redis_url="redis://:pw@127.0.0.1:1/0",
        database_url="postgresql+asyncpg://postgres@127.0.0.1:2/conduit",
        jwt_secret="s" * 48,
        inherited={"PATH": "/usr/bin", "HTTP_PORT": "1"},
    )


def test_every_service_gets_its_own_port_and_the_shared_stores() -> None:
    env = _environment("notifier")
    assert env["HTTP_PORT"] == "9101"
    assert env["REDIS_URL"] == "redis://:pw@127.0.0.1:1/0"
    assert env["DATABASE_URL"].endswith("/conduit")
    assert (env["JWT_SECRET"], env["QUEUE_NAMES"], env["LOG_LEVEL"]) == (
        "s" * 48,
        "default",
        "INFO",
    )
    assert env["PATH"] == "/usr/bin"
    assert "HEALTH_GATEWAY_URL" not in env


def test_health_is_told_where_the_other_services_are() -> None:
    env = _environment("health")
    assert env["HEALTH_GATEWAY_URL"] == "http://127.0.0.1:9100"
    assert env["HEALTH_NOTIFIER_URL"] == "http://127.0.0.1:9101"
    assert "HEALTH_WORKER_URL" not in env


def test_default_ports_follow_the_service_conventions() -> None:
    assert {spec.name: spec.port for spec in SERVICES} == {
        "gateway": 8000,
        "notifier": 8001,
        "health": 8002,
        "worker": 8003,
    }


def test_wait_ready_reports_the_log_of_a_service_that_died(tmp_path: Path) -> None:
    spec = ServiceSpec(name="ghost", module="conduit_module_that_does_not_exist", port=free_port())
    process = ServiceProcess(spec, spec.port, {}, log_path=tmp_path / "ghost.log")
    process.start()
    with pytest.raises(ServiceError, match="No module named conduit_module_that_does_not_exist"):
        process.wait_ready(timeout_s=10.0)
    assert process.returncode == 1
    process.kill()
