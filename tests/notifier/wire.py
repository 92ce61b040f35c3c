"""What notifier tests put on the events streams and read off the WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gateway.auth import create_jwt_auth
from gateway.subscriptions import subscription_routes
from shared.contracts.codec import encoder
from shared.contracts.events import ErrorInfo, JobCompleted, JobDeadLettered, JobEvent, JobQueued
from shared.contracts.ws import EventPush, ServerMessage
from shared.settings import JwtSettings
from shared.streams import DATA_FIELD, QueueKeys

RECEIVE_TIMEOUT_S = 5


def ws_url(base_url: str, token: str | None, since: str | None = None) -> str:
    """The `/ws` URL of a notifier, with `token` and `since` in the query string when given."""
    url = base_url.replace("http://", "ws://", 1) + "/ws"
    query = [] if token is None else [f"token={token}"]
    if since is not None:
        query.append(f"since={since}")
    return f"{url}?{'&'.join(query)}" if query else url


def queued(*rooms: str, job_id: str = "job-1", queue: str = "default") -> JobQueued:
    """A `job.queued` event addressed to `rooms`."""
    return JobQueued(
        job_id=job_id, type="demo.echo", queue=queue, owner="alice", rooms=rooms, at_ms=1
    )


def dead_lettered(
    *rooms: str, detail: str = "ZeroDivisionError at handlers.py:12", job_id: str = "job-2"
) -> JobDeadLettered:
    """A `job.dead_lettered` event with a friendly message and an admin-only detail."""
    return JobDeadLettered(
        job_id=job_id,
        type="demo.fail",
        queue="default",
        owner="alice",
        rooms=rooms,
        at_ms=2,
        attempt=3,
        error=ErrorInfo(message="The job failed.", detail=detail),
    )


def completed(*rooms: str, job_id: str, result: str = "ok", owner: str = "alice") -> JobCompleted:
    """A `job.completed` event."""
    return JobCompleted(
        job_id=job_id,
        type="demo.echo",
        queue="default",
        owner=owner,
        rooms=rooms,
        at_ms=3,
        attempt=1,
        result=result,
    )


async def publish(redis: Redis, event: JobEvent, queue: str = "default") -> str:
    """Append an event to a queue's events stream as a worker does; returns its entry id."""
    entry_id = await redis.xadd(QueueKeys(queue).events, {DATA_FIELD: encoder.encode(event)})
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


async def receive(client: ClientConnection) -> ServerMessage:
    """The next server message."""
    message: ServerMessage = msgspec.json.decode(
        await asyncio.wait_for(client.recv(), RECEIVE_TIMEOUT_S), type=ServerMessage
    )
    return message


async def next_push(client: ClientConnection) -> EventPush:
    """The next message, which must be an event."""
    message = await receive(client)
    assert isinstance(message, EventPush), message
    return message


async def drain(client: ClientConnection) -> None:
    """Read until the connection closes."""
    while True:
        await asyncio.wait_for(client.recv(), RECEIVE_TIMEOUT_S)


async def close_code(client: ClientConnection) -> tuple[int, str]:
    """The code and reason the server closes with, reading past anything still to come."""
    with pytest.raises(ConnectionClosed) as closed:
        await drain(client)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 10) -> None:
    """Return once `condition` holds, polling it; fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110 - polls state other processes change
            await asyncio.sleep(0.02)


async def gateway_token(jwt_secret: str, access_token: str, room: str) -> str:
    """A subscription token from the gateway's own `POST /v1/subscriptions`."""
    settings = JwtSettings(secret=jwt_secret)
    app = Litestar(
        route_handlers=subscription_routes(settings),
        on_app_init=[create_jwt_auth(settings).on_app_init],
        logging_config=None,
    )
    async with AsyncTestClient(app=app) as gateway:
        response = await gateway.post(
            "/v1/subscriptions",
            json={"room": room},
            headers={"Authorization": f"Bearer {access_token}"},
        )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token
