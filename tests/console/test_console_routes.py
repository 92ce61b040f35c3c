"""The console's routes in the gateway: public pages, dev sign-in only in dev mode, the health
proxy for admins, and the API still closed to callers without a token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from devstack.ports import free_port
from devstack.tokens import TokenFactory
from gateway.app import Settings, create_app
from gateway.console.settings import ConsoleSettings
from shared.settings import (
    DatabaseSettings,
    JwtSettings,
    QueueSettings,
    RedisSettings,
    SettingsError,
    from_env,
)
from tests.api import PROBLEM, Client, bearer


def settings(
    redis_url: str, database_url: str, jwt_secret: str, console: ConsoleSettings
) -> Settings:
    return Settings(
        redis=RedisSettings(url=redis_url),
        database=DatabaseSettings(url=database_url),
        queues=QueueSettings(),
        jwt=JwtSettings(secret=jwt_secret),
        console=console,
    )


@pytest.fixture
async def dev_client(redis_url: str, database_url: str, jwt_secret: str) -> AsyncIterator[Client]:
    """The gateway in dev mode, with the health service nowhere (a port nothing listens on)."""
    console = ConsoleSettings(
        dev_sign_in=True,
        notifier_url="ws://127.0.0.1:8001/ws",
        health_url=f"http://127.0.0.1:{free_port()}",
        health_timeout_s=1.0,
    )
    app = create_app(settings(redis_url, database_url, jwt_secret, console))
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def prod_client(redis_url: str, database_url: str, jwt_secret: str) -> AsyncIterator[Client]:
    """The gateway as it starts without any CONSOLE_* variable."""
    app = create_app(settings(redis_url, database_url, jwt_secret, ConsoleSettings()))
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.mark.parametrize("path", ["/console", "/console/", "/console/index.html"])
async def test_the_console_page_is_served_without_a_token(prod_client: Client, path: str) -> None:
    answer = await prod_client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/js/main.js">' in answer.text
    assert answer.headers["cache-control"] == "no-cache"


async def test_every_script_the_page_loads_is_served(prod_client: Client) -> None:
    for path in ("/console/js/main.js", "/console/js/pages/jobs.js", "/console/console.css"):
        answer = await prod_client.get(path)
        assert answer.status_code == 200, path
    assert (await prod_client.get("/console/js/nothing.js")).status_code == 404


async def test_the_api_stays_closed_to_callers_without_a_token(prod_client: Client) -> None:
    for path in ("/v1/jobs", "/v1/settings", "/console/api/health"):
        answer = await prod_client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["content-type"] == PROBLEM


async def test_without_dev_mode_no_token_can_be_minted(prod_client: Client) -> None:
    config = (await prod_client.get("/console/api/config")).json()
    assert config == {"dev_sign_in": False, "dev_users": [], "notifier_url": ""}
    answer = await prod_client.post("/console/api/dev-token", json={"sub": "eve", "role": "ADMIN"})
    assert answer.status_code in (404, 405)
    assert "token" not in answer.text


async def test_a_dev_token_is_accepted_by_the_api_with_the_role_asked_for(
    dev_client: Client,
) -> None:
    config = (await dev_client.get("/console/api/config")).json()
    assert config["dev_sign_in"] is True
    assert {"sub": "admin", "role": "ADMIN"} in config["dev_users"]
    assert config["notifier_url"] == "ws://127.0.0.1:8001/ws"

    minted = await dev_client.post("/console/api/dev-token", json={"sub": "carol", "role": "USER"})
    assert minted.status_code == 200
    user = minted.json()
    assert (user["sub"], user["role"], user["expires_in_s"]) == ("carol", "USER", 3600)
    count = await dev_client.get("/v1/notifications/unread-count", headers=bearer(user["token"]))
    assert count.status_code == 200
    refused = await dev_client.get("/v1/settings", headers=bearer(user["token"]))
    assert refused.status_code == 403

    admin = (
        await dev_client.post("/console/api/dev-token", json={"sub": "dora", "role": "ADMIN"})
    ).json()
    assert (await dev_client.get("/v1/settings", headers=bearer(admin["token"]))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"sub": "", "role": "USER"}, {"sub": "a b", "role": "USER"}, {"sub": "x", "role": "ROOT"}],
)
async def test_a_malformed_dev_user_is_refused(dev_client: Client, body: dict[str, str]) -> None:
    answer = await dev_client.post("/console/api/dev-token", json=body)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == PROBLEM


async def test_the_health_proxy_is_for_admins_and_says_when_health_is_unreachable(
    dev_client: Client, make_token: TokenFactory
) -> None:
    user = await dev_client.get("/console/api/health", headers=bearer(make_token("erin")))
    assert user.status_code == 403
    admin = await dev_client.get("/console/api/health", headers=bearer(make_token("ops", "ADMIN")))
    assert admin.status_code == 502
    assert admin.json()["type"] == "urn:conduit:problem:health-unreachable"


def test_the_console_settings_refuse_urls_of_the_wrong_kind() -> None:
    for bad in (
        {"CONSOLE_NOTIFIER_URL": "http://127.0.0.1:8001/ws"},
        {"CONSOLE_HEALTH_URL": "ws://127.0.0.1:8002"},
        {"CONSOLE_HEALTH_URL": "127.0.0.1:8002"},
        {"CONSOLE_HEALTH_TIMEOUT_S": "0"},
    ):
        with pytest.raises(SettingsError):
            from_env(ConsoleSettings, bad)
    assert from_env(ConsoleSettings, {"CONSOLE_DEV_SIGN_IN": "true"}).dev_sign_in
    assert not from_env(ConsoleSettings, {}).dev_sign_in
