"""`/v1/settings` on the whole gateway app, real PostgreSQL and Redis: admins only, validation
as problem+json, and each change stored, announced and applied by running listeners."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis

from devstack.servers import RedisServer
from devstack.tokens import TokenFactory
from shared.db.session import create_engine, create_sessionmaker
from shared.runtime.catalog import CATALOG
from shared.runtime.listener import SettingsListener, follow_log_level
from shared.runtime.store import RuntimeSettingsStore
from shared.settings import DatabaseSettings
from tests.api import PROBLEM, Client, bearer


@pytest.fixture(autouse=True)
def root_level() -> Iterator[int]:
    """The root logger's level before the test, restored after it: the gateway's own listener
    applies `log_level` to the root logger of this test process."""
    root = logging.getLogger()
    before = root.level
    yield before
    root.setLevel(before)


@pytest.fixture
def admin(make_token: TokenFactory) -> dict[str, str]:
    """An admin's Authorization header; the admin's sub is `root`."""
    return bearer(make_token("root", "ADMIN"))


@pytest.fixture
async def settings_store(database_url: str, redis: Redis) -> AsyncIterator[RuntimeSettingsStore]:
    """The store another service would build on the same database and Redis."""
    engine = create_engine(DatabaseSettings(url=database_url))
    yield RuntimeSettingsStore(create_sessionmaker(engine), redis)
    await engine.dispose()


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Return once `condition` holds; fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polls what another task changes
            await asyncio.sleep(0.01)


async def test_without_a_token_it_is_401_and_for_a_user_403(
    client: Client, make_token: TokenFactory
) -> None:
    user = bearer(make_token("alice"))
    anonymous = await client.get("/v1/settings")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith(PROBLEM)

    for answer in (
        await client.get("/v1/settings", headers=user),
        await client.get("/v1/settings/log_level", headers=user),
        await client.put("/v1/settings/log_level", json={"value": "DEBUG"}, headers=user),
        await client.delete("/v1/settings/log_level", headers=user),
    ):
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.json()["type"] == "urn:conduit:problem:forbidden"


async def test_the_list_shows_every_key_with_its_default_description_and_schema(
    client: Client, admin: dict[str, str]
) -> None:
    listed = await client.get("/v1/settings", headers=admin)

    assert listed.status_code == 200
    by_key = {item["key"]: item for item in listed.json()}
    assert list(by_key) == list(CATALOG)
    ttl = by_key["jobs.completed_ttl_s"]
    assert ttl == {
        "key": "jobs.completed_ttl_s",
        "value": 86400,
        "default": 86400,
        "description": CATALOG["jobs.completed_ttl_s"].description,
        "schema": {"type": "integer", "minimum": 60, "maximum": 31536000},
        "updated_by": None,
        "updated_at": None,
    }
    assert by_key["worker.retry_schedule_s"]["default"] == [10.0, 60.0, 300.0]
    assert by_key["gateway.job_rate_per_user"]["default"] == {"per_s": 50.0, "burst": 1000}


async def test_an_unknown_key_is_404_for_every_method(
    client: Client, admin: dict[str, str]
) -> None:
    for answer in (
        await client.get("/v1/settings/no.such", headers=admin),
        await client.put("/v1/settings/no.such", json={"value": 1}, headers=admin),
        await client.delete("/v1/settings/no.such", headers=admin),
    ):
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert "log_level" in answer.json()["known_keys"]


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("log_level", "LOUD", "Invalid enum value 'LOUD'"),
        ("jobs.failed_ttl_s", 59, "Expected `int` >= 60"),
        ("worker.retry_schedule_s", [], "length >= 1"),
        ("gateway.job_rate_per_user", {"per_s": 1, "brust": 5}, "unknown field `brust`"),
        ("worker.concurrency", 0, "Expected `int` >= 1"),
        ("worker.rate_limits", "demo.echo=fast", "is not NAME=COUNT/UNIT"),
    ],
)
async def test_an_invalid_value_is_a_422_problem_naming_the_key_and_stores_nothing(
    *,
    client: Client,
    admin: dict[str, str],
    settings_store: RuntimeSettingsStore,
    key: str,
    value: object,
    why: str,
) -> None:
    refused = await client.put(f"/v1/settings/{key}", json={"value": value}, headers=admin)

    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith(PROBLEM)
    problem = refused.json()
    assert problem["type"] == "urn:conduit:problem:invalid-setting"
    assert problem["key"] == key
    assert problem["detail"].startswith(f"{key}: ")
    assert why in problem["detail"]
    assert problem["schema"] == CATALOG[key].schema()
    assert await settings_store.stored() == {}


async def test_a_body_without_a_value_is_a_400_problem(
    client: Client, admin: dict[str, str]
) -> None:
    for body in ({}, {"value": 60, "extra": 1}):
        refused = await client.put("/v1/settings/jobs.failed_ttl_s", json=body, headers=admin)
        assert refused.status_code == 400
        assert refused.headers["content-type"].startswith(PROBLEM)


async def test_a_change_is_stored_announced_and_applied_by_a_running_service(
    client: Client, admin: dict[str, str], settings_store: RuntimeSettingsStore, redis: Redis
) -> None:
    # Another service: its own listener, applying log_level to its own logger.
    logger = logging.getLogger(f"conduit.test.service.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    listener = SettingsListener(redis, settings_store)
    follow_log_level(listener, logger)
    async with listener.running():
        await asyncio.wait_for(listener.wait_following(), 10)

        changed = await client.put("/v1/settings/log_level", json={"value": "ERROR"}, headers=admin)

        assert changed.status_code == 200
        body = changed.json()
        assert (body["key"], body["value"], body["default"]) == ("log_level", "ERROR", "INFO")
        assert body["updated_by"] == "root"
        assert body["updated_at"] is not None
        stored = await settings_store.get("log_level")
        assert stored is not None
        assert (stored.value, stored.updated_by) == ("ERROR", "root")
        await until(lambda: logger.level == logging.ERROR)
        assert (await client.get("/v1/settings/log_level", headers=admin)).json() == body

        reset = await client.delete("/v1/settings/log_level", headers=admin)

        assert reset.status_code == 200
        assert (reset.json()["value"], reset.json()["updated_by"]) == ("INFO", None)
        assert await settings_store.get("log_level") is None
        await until(lambda: logger.level == logging.INFO)
    logger.setLevel(logging.NOTSET)


async def test_the_gateway_applies_log_level_to_its_own_root_logger(
    client: Client, admin: dict[str, str], root_level: int
) -> None:
    root = logging.getLogger()
    # Not the level the test process started with, so that the change is visible.
    target = "ERROR" if root.getEffectiveLevel() != logging.ERROR else "DEBUG"

    await client.put("/v1/settings/log_level", json={"value": target}, headers=admin)
    await until(lambda: logging.getLevelName(root.level) == target)

    await client.delete("/v1/settings/log_level", headers=admin)
    await until(lambda: root.level == root_level)


async def test_null_turns_the_per_user_job_rate_off(
    client: Client, admin: dict[str, str], settings_store: RuntimeSettingsStore
) -> None:
    changed = await client.put(
        "/v1/settings/gateway.job_rate_per_user", json={"value": None}, headers=admin
    )

    assert changed.status_code == 200
    assert (changed.json()["value"], changed.json()["updated_by"]) == (None, "root")
    assert await settings_store.stored_values() == {"gateway.job_rate_per_user": None}


async def test_a_change_redis_cannot_announce_is_stored_and_answered_503(
    client: Client,
    admin: dict[str, str],
    settings_store: RuntimeSettingsStore,
    redis_server: RedisServer,
) -> None:
    await asyncio.to_thread(redis_server.stop)
    try:
        answer = await client.put(
            "/v1/settings/worker.retry_schedule_s", json={"value": [1, 2]}, headers=admin
        )
    finally:
        await asyncio.to_thread(redis_server.start)

    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["type"] == "urn:conduit:problem:setting-not-announced"
    assert answer.json()["key"] == "worker.retry_schedule_s"
    assert await settings_store.stored_values() == {"worker.retry_schedule_s": [1.0, 2.0]}
    again = await client.put(
        "/v1/settings/worker.retry_schedule_s", json={"value": [1, 2]}, headers=admin
    )
    assert again.status_code == 200


async def test_the_gateway_applies_a_new_per_user_job_rate_at_once(
    client: Client, admin: dict[str, str], make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))
    job = {"type": "demo.echo", "payload": {"text": "hi"}}

    await client.put(
        "/v1/settings/gateway.job_rate_per_user",
        json={"value": {"per_s": 0.01, "burst": 2}},
        headers=admin,
    )

    async def refused() -> bool:
        return (await client.post("/v1/jobs", json=job, headers=alice)).status_code == 429

    async with asyncio.timeout(10):
        while not await refused():  # noqa: ASYNC110 - polls what another task changes
            await asyncio.sleep(0.05)
    await client.put("/v1/settings/gateway.job_rate_per_user", json={"value": None}, headers=admin)
    async with asyncio.timeout(10):
        while await refused():  # noqa: ASYNC110 - polls what another task changes
            await asyncio.sleep(0.05)
    assert (await client.post("/v1/jobs", json=job, headers=alice)).status_code == 202
