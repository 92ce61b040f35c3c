"""`/v1/repeatables` against a real Redis: admins only, validation as problem+json, CRUD."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.di import Provide
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from devstack.tokens import TokenFactory
from gateway.auth import create_jwt_auth
from gateway.problems import EXCEPTION_HANDLERS, problem_details_plugin
from gateway.repeatables import RepeatableController
from shared.connections import redis_client
from shared.contracts.repeatables import Repeatable
from shared.jobstore import JobStore
from shared.repeatables import RepeatableStore
from shared.settings import JwtSettings, QueueSettings, RedisSettings
from shared.streams import QueueKeys

PROBLEM = "application/problem+json"
Client = AsyncTestClient[Litestar]
QUEUES = QueueSettings(names=("default", "reports"))
NIGHTLY: dict[str, Any] = {
    "name": "nightly-echo",
    "type": "demo.echo",
    "payload": {"text": "good night"},
    "cron": "0 3 * * *",
}


@pytest.fixture
async def client(redis_url: str, jwt_secret: str) -> AsyncIterator[Client]:
    """The controller wired as gateway.app.create_app wires its routes, with its own client."""
    app_redis = redis_client(RedisSettings(url=redis_url))
    store = JobStore(app_redis)
    repeatables = RepeatableStore(app_redis)

    async def close_redis() -> None:
        await app_redis.aclose()

    app = Litestar(
        route_handlers=[RepeatableController],
        dependencies={
            "redis": Provide(lambda: app_redis, sync_to_thread=False),
            "store": Provide(lambda: store, sync_to_thread=False),
            "queues": Provide(lambda: QUEUES, sync_to_thread=False),
            "repeatables": Provide(lambda: repeatables, sync_to_thread=False),
        },
        on_app_init=[create_jwt_auth(JwtSettings(secret=jwt_secret)).on_app_init],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        on_shutdown=[close_redis],
        logging_config=None,
    )
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
def admin(make_token: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token('root', 'ADMIN')}"}


async def test_an_admin_creates_reads_lists_and_deletes_a_repeatable(
    client: Client, admin: dict[str, str]
) -> None:
    created = await client.post("/v1/repeatables", json=NIGHTLY, headers=admin)

    assert created.status_code == 201
    assert created.headers["location"] == "/v1/repeatables/default/nightly-echo"
    body = created.json()
    assert (body["queue"], body["owner"], body["cron"], body["every_s"]) == (
        "default",
        "root",
        "0 3 * * *",
        None,
    )
    assert (await client.get(created.headers["location"], headers=admin)).json() == body
    assert (await client.get("/v1/repeatables", headers=admin)).json() == [body]

    deleted = await client.delete(created.headers["location"], headers=admin)

    assert deleted.status_code == 204
    assert (await client.get("/v1/repeatables", headers=admin)).json() == []
    gone = await client.get(created.headers["location"], headers=admin)
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith(PROBLEM)


async def test_the_list_spans_every_queue_and_shows_code_defined_ones(
    client: Client, redis: Redis, admin: dict[str, str]
) -> None:
    system = Repeatable(
        name="token-refresh",
        type="demo.echo",
        payload={"text": "t"},
        queue="reports",
        every_s=86400,
    )
    await RepeatableStore(redis).put(system, 0)
    await client.post(
        "/v1/repeatables", json=NIGHTLY | {"every_s": 60, "cron": None}, headers=admin
    )

    listed = (await client.get("/v1/repeatables", headers=admin)).json()

    assert [(item["queue"], item["name"], item["owner"]) for item in listed] == [
        ("default", "nightly-echo", "root"),
        ("reports", "token-refresh", "system"),
    ]


async def test_a_taken_name_is_409_and_keeps_the_first_definition(
    client: Client, admin: dict[str, str]
) -> None:
    await client.post("/v1/repeatables", json=NIGHTLY, headers=admin)

    again = await client.post(
        "/v1/repeatables", json=NIGHTLY | {"cron": "*/5 * * * *"}, headers=admin
    )

    assert again.status_code == 409
    assert again.headers["content-type"].startswith(PROBLEM)
    [kept] = (await client.get("/v1/repeatables", headers=admin)).json()
    assert kept["cron"] == "0 3 * * *"


async def test_the_same_name_may_exist_on_another_queue(
    client: Client, admin: dict[str, str]
) -> None:
    await client.post("/v1/repeatables", json=NIGHTLY, headers=admin)

    other = await client.post("/v1/repeatables", json=NIGHTLY | {"queue": "reports"}, headers=admin)

    assert other.status_code == 201


async def test_deleting_a_missing_repeatable_is_404_problem(
    client: Client, admin: dict[str, str]
) -> None:
    for path in ("/v1/repeatables/default/nope", "/v1/repeatables/no-such-queue/nope"):
        answer = await client.delete(path, headers=admin)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/repeatables"),
        ("POST", "/v1/repeatables"),
        ("GET", "/v1/repeatables/default/nightly-echo"),
        ("DELETE", "/v1/repeatables/default/nightly-echo"),
    ],
)
async def test_a_user_is_forbidden_and_changes_nothing(
    client: Client,
    redis: Redis,
    make_token: TokenFactory,
    *,
    method: str,
    path: str,
) -> None:
    await RepeatableStore(redis).create(
        Repeatable(name="nightly-echo", type="demo.echo", queue="default", cron="0 3 * * *"), 0
    )
    user = {"Authorization": f"Bearer {make_token('alice')}"}

    answer = await client.request(
        method, path, json=NIGHTLY if method == "POST" else None, headers=user
    )

    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["type"] == "urn:conduit:problem:forbidden"
    assert await redis.hlen(QueueKeys("default").repeatables) == 1


async def test_a_request_without_a_token_is_401_problem(client: Client) -> None:
    answer = await client.get("/v1/repeatables")

    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("changes", "status", "says"),
    [
        ({"cron": "0 3 * *"}, 422, "invalid cron expression"),
        ({"cron": "0 0 31 4 *"}, 422, "never fires"),
        ({"every_s": 60}, 422, "exactly one schedule"),
        ({"cron": None}, 422, "exactly one schedule"),
        ({"type": "demo.nope"}, 422, "unknown job type"),
        ({"payload": {"text": 5}}, 422, "invalid payload"),
        ({"queue": "nope"}, 422, "unknown queue"),
        ({"name": "Has Spaces"}, 400, "Validation"),
        ({"name": "a:b"}, 400, "Validation"),
        ({"cron": None, "every_s": 0}, 400, "Validation"),
        ({"surprise": 1}, 400, "Validation"),
    ],
)
async def test_a_definition_that_cannot_run_is_a_clear_problem_and_stores_nothing(
    client: Client,
    redis: Redis,
    admin: dict[str, str],
    *,
    changes: dict[str, Any],
    status: int,
    says: str,
) -> None:
    answer = await client.post("/v1/repeatables", json=NIGHTLY | changes, headers=admin)

    assert answer.status_code == status
    assert answer.headers["content-type"].startswith(PROBLEM)
    problem = answer.json()
    assert problem["type"].startswith("urn:conduit:problem:")
    assert says in problem["detail"]
    assert await redis.exists(QueueKeys("default").repeatables) == 0
