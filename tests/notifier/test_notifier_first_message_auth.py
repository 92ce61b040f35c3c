"""The token in the first message instead of the URL: welcomed, or closed 4401 when missing, late,
wrong or refused; nothing pushed and no room joined before; the typed client's option."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import msgspec
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from devstack.tokens import TokenFactory, mint_token
from shared.client import NotifierClient
from shared.contracts.ws import (
    CLOSE_UNAUTHORIZED,
    Auth,
    ClientMessage,
    Error,
    EventPush,
    Join,
    Presence,
    PresenceQuery,
    Welcome,
)
from tests.notifier.wire import RECEIVE_TIMEOUT_S, next_push, publish, queued, receive, ws_url

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]


async def send(client: ClientConnection, message: ClientMessage) -> None:
    await client.send(msgspec.json.encode(message).decode())


async def closed_before_anything(client: ClientConnection) -> tuple[int, str]:
    """The close the server ends with, which must be the first thing it sends."""
    with pytest.raises(ConnectionClosed) as closed:
        await receive(client)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_auth_as_first_message_is_welcomed_with_the_rooms_of_its_token(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    async with connect(ws_url(notifier_url, None)) as client:
        await send(client, Auth(token=make_token("alice")))
        welcome = await receive(client)
        await publish(redis, queued("user:alice", job_id="after-auth"))
        push = await next_push(client)

    assert welcome == Welcome(sub="alice", role="USER", rooms=("user:alice", "role:USER"))
    assert push.event.job_id == "after-auth"


async def test_before_its_auth_message_a_client_is_in_no_room_and_sent_nothing(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    async with (
        connect(ws_url(notifier_url, None)) as waiting,
        connect(ws_url(notifier_url, make_token("root", "ADMIN"))) as admin,
        connect(ws_url(notifier_url, make_token("alice"))) as observer,
    ):
        assert isinstance(await receive(admin), Welcome)
        assert isinstance(await receive(observer), Welcome)
        await publish(redis, queued("user:alice", "role:USER", job_id="before-auth"))
        # Fanned out by now: the observer in the same rooms has it.
        assert (await next_push(observer)).event.job_id == "before-auth"
        await send(admin, PresenceQuery(room="user:alice"))
        present_before = await receive(admin)
        await send(waiting, Auth(token=make_token("alice")))
        welcome = await receive(waiting)
        await publish(redis, queued("user:alice", job_id="after-auth"))
        first_push = await next_push(waiting)
        await send(admin, PresenceQuery(room="user:alice"))
        present_after = await receive(admin)

    assert isinstance(present_before, Presence)
    assert present_before.connections == 1
    assert isinstance(welcome, Welcome)
    assert first_push.event.job_id == "after-auth"
    assert isinstance(present_after, Presence)
    assert present_after.connections == 2


async def test_no_auth_message_within_the_deadline_is_closed_with_4401(
    start_notifier: StartNotifier, redis_url: str
) -> None:
    async with (
        start_notifier(redis_url, auth_timeout_ms=300) as base_url,
        connect(ws_url(base_url, None)) as client,
    ):
        started = time.monotonic()
        closed = await closed_before_anything(client)
        waited_s = time.monotonic() - started

    assert closed == (CLOSE_UNAUTHORIZED, "unauthorized: no auth message within 0.3 s")
    assert 0.2 <= waited_s < RECEIVE_TIMEOUT_S


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        pytest.param(
            msgspec.json.encode(Join(token="x")).decode(),
            "unauthorized: the first message must be auth, or connect with a token",
            id="another message",
        ),
        pytest.param(
            "hello",
            "unauthorized: the first message must be auth, or connect with a token",
            id="not json",
        ),
        pytest.param(
            msgspec.json.encode(Auth(token="not-a-jwt")).decode(), "unauthorized", id="garbage"
        ),
        pytest.param(
            msgspec.json.encode(Auth(token=mint_token("x" * 40, "alice"))).decode(),
            "unauthorized",
            id="signed-with-another-secret",
        ),
        pytest.param(msgspec.json.encode(Auth(token="")).decode(), "unauthorized", id="empty"),
    ],
)
async def test_first_message_that_is_not_a_valid_auth_is_closed_with_4401(
    notifier_url: str, first: str, reason: str
) -> None:
    async with connect(ws_url(notifier_url, None)) as client:
        await client.send(first)
        code, said = await closed_before_anything(client)

    assert code == CLOSE_UNAUTHORIZED
    assert said.startswith(reason)


async def test_expired_token_in_the_auth_message_is_closed_with_4401(
    notifier_url: str, make_token: TokenFactory
) -> None:
    async with connect(ws_url(notifier_url, None)) as client:
        await send(client, Auth(token=make_token("alice", ttl_s=-10)))
        code, _ = await closed_before_anything(client)

    assert code == CLOSE_UNAUTHORIZED


async def test_auth_message_on_an_authenticated_connection_gets_an_error(
    notifier_url: str, make_token: TokenFactory
) -> None:
    async with connect(ws_url(notifier_url, make_token("alice"))) as client:
        await receive(client)
        await send(client, Auth(token=make_token("alice")))
        answer = await receive(client)

    assert isinstance(answer, Error)
    assert answer.reason.startswith("auth refused: already authenticated")


async def test_first_message_auth_catches_up_from_the_offset_in_the_url(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    seen = await publish(redis, queued("user:alice", job_id="seen"))
    await publish(redis, queued("user:alice", job_id="missed"))
    async with connect(ws_url(notifier_url, None, since=f"default:{seen}")) as client:
        await send(client, Auth(token=make_token("alice")))
        welcome = await receive(client)
        recovered = await next_push(client)

    assert isinstance(welcome, Welcome)
    assert (recovered.event.job_id, recovered.recovered) == ("missed", True)


async def test_typed_client_can_keep_its_token_out_of_the_url(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    url = ws_url(notifier_url, None)
    client = NotifierClient(url, make_token("alice"), token_in_message=True)
    messages = client.messages()
    try:
        welcome = await asyncio.wait_for(anext(messages), RECEIVE_TIMEOUT_S)
        await publish(redis, queued("user:alice", job_id="typed"))
        push = await asyncio.wait_for(anext(messages), RECEIVE_TIMEOUT_S)
        next_url = client.url()
    finally:
        await client.close()

    assert isinstance(welcome, Welcome)
    assert welcome.sub == "alice"
    assert isinstance(push, EventPush)
    assert push.event.job_id == "typed"
    # The next connection would carry only its offsets.
    assert "token" not in next_url
    assert next_url.startswith(f"{url}?since=default%3A")
