"""What the devstack tells the gateway and the notifier so that the console works in `make run`."""

from __future__ import annotations

from devstack.services import SERVICES, service_environment

PORTS = {"gateway": 9200, "notifier": 9201, "health": 9202, "worker": 9203}


def environment(
    name: str, inherited: dict[str, str] | None = None, ports: dict[str, int] = PORTS
) -> dict[str, str]:
    spec = next(spec for spec in SERVICES if spec.name == name)
    return service_environment(
        spec,
        ports,
        redis_url="redis://127.0.0.1:1/0",
        database_url="postgresql+asyncpg://postgres@127.0.0.1:2/conduit",
        jwt_secret="s" * 48,
        inherited=inherited or {"PATH": "/usr/bin"},
    )


def test_the_devstack_gateway_runs_the_console_in_dev_mode() -> None:
    env = environment("gateway")
    assert env["CONSOLE_DEV_SIGN_IN"] == "true"
    assert env["CONSOLE_NOTIFIER_URL"] == "ws://127.0.0.1:9201/ws"
    assert env["CONSOLE_HEALTH_URL"] == "http://127.0.0.1:9202"


def test_dev_sign_in_can_be_turned_off_for_make_run() -> None:
    env = environment("gateway", {"CONSOLE_DEV_SIGN_IN": "false"})
    assert env["CONSOLE_DEV_SIGN_IN"] == "false"


def test_the_notifier_lets_the_console_pages_open_a_socket() -> None:
    assert environment("notifier")["NOTIFIER_ALLOWED_ORIGINS"] == (
        "http://127.0.0.1:9200,http://localhost:9200"
    )
    kept = environment("notifier", {"NOTIFIER_ALLOWED_ORIGINS": "https://app.example.com"})
    assert kept["NOTIFIER_ALLOWED_ORIGINS"].split(",")[0] == "https://app.example.com"


def test_only_the_gateway_and_notifier_get_console_settings() -> None:
    for name in ("worker", "health"):
        env = environment(name)
        assert not any(key.startswith("CONSOLE_") for key in env)
        assert "NOTIFIER_ALLOWED_ORIGINS" not in env


def test_a_gateway_started_alone_keeps_the_console_defaults() -> None:
    env = environment("gateway", ports={"gateway": 9300})
    assert env["CONSOLE_DEV_SIGN_IN"] == "true"
    assert "CONSOLE_NOTIFIER_URL" not in env
    assert "CONSOLE_HEALTH_URL" not in env
    assert "NOTIFIER_ALLOWED_ORIGINS" not in environment("notifier", ports={"notifier": 9301})
