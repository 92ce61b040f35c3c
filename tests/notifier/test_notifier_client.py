"""shared.client against real notifiers: typed messages, offsets, reconnect with catch-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import jwt
import pytest
from redis.asyncio import Redis

from devstack.ports import free_port
from devstack.tokens import TokenFactory
from shared.client import NotifierClient, NotifierClosedError, connect
from shared.contracts.ws import (
    CLOSE_UNAUTHORIZED,
    EventPush,
    Joined,
    Presence,
    ServerMessage,
    TokenExpiring,
    TokenRefreshed,
    Welcome,
)
from tests.notifier.wire import gateway_token, publish, queued

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]
TIMEOUT_S = 5


def ws(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/ws"


async def next_message(messages: AsyncIterator[ServerMessage]) -> ServerMessage:
    return await asyncio.wait_for(anext(messages), TIMEOUT_S)


async def next_push(messages: AsyncIterator[ServerMessage]) -> EventPush:
    message = await next_message(messages)
    assert isinstance(message, EventPush), message
    return message


async def test_client_yields_typed_messages_and_remembers_the_last_offset_per_queue(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    async with connect(ws(notifier_url), make_token("alice")) as client:
        messages = client.messages()
        welcome = await next_message(messages)
        await publish(redis, queued("user:alice", job_id="a"))
        emails_id = await publish(redis, queued("user:alice", queue="emails"), "emails")
        default_id = await publish(redis, queued("user:alice", job_id="b"))
        pushes = [await next_push(messages) for _ in range(3)]

    assert isinstance(welcome, Welcome)
    assert [push.event.job_id for push in pushes] == ["a", "job-1", "b"]
    assert client.offsets == {"default": default_id, "emails": emails_id}


async def test_client_reconnects_after_a_notifier_restart_and_gets_what_it_missed(
    start_notifier: StartNotifier, redis_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    port = free_port()
    client = NotifierClient(
        f"ws://127.0.0.1:{port}/ws", make_token("alice"), backoff_min_s=0.05, backoff_max_s=0.2
    )
    # Iterating connects on demand, so the client can outlive the first notifier.
    messages = client.messages()
    try:
        async with start_notifier(redis_url, port=port):
            await next_message(messages)
            await publish(redis, queued("user:alice", job_id="before"))
            await next_push(messages)
        # The notifier is down: this one is missed, then caught up.
        await publish(redis, queued("user:alice", job_id="while-down"))
        async with start_notifier(redis_url, port=port):
            welcome = await next_message(messages)
            recovered = await next_push(messages)
            await publish(redis, queued("user:alice", job_id="live"))
            live = await next_push(messages)
    finally:
        await client.close()

    assert isinstance(welcome, Welcome)
    assert (recovered.event.job_id, recovered.recovered) == ("while-down", True)
    assert (live.event.job_id, live.recovered) == ("live", False)
    assert client.connections == 2


async def test_client_joins_asks_presence_and_refreshes_its_token_when_asked(
    start_notifier: StartNotifier, redis_url: str, make_token: TokenFactory, jwt_secret: str
) -> None:
    room_token = jwt.encode(
        {"sub": "alice", "room": "entity:order:7", "typ": "subscription", "exp": 10**10},
        jwt_secret,
    )
    tokens = iter([make_token("alice", ttl_s=3), make_token("alice")])
    async with (
        start_notifier(redis_url, token_warn_s=2) as base_url,
        connect(ws(base_url), lambda: next(tokens)) as client,
    ):
        messages = client.messages()
        await next_message(messages)
        await client.join(room_token)
        # The expiry warning comes about 1 s after connecting; on a slow machine it may come
        # before the answers to join and presence, so the four are compared by kind.
        received = [await next_message(messages)]
        while not any(isinstance(message, Joined) for message in received):
            received.append(await next_message(messages))
        await client.presence("entity:order:7")
        while len(received) < 4:
            received.append(await next_message(messages))

    by_kind = {type(message): message for message in received}
    assert by_kind[Joined] == Joined(room="entity:order:7")
    assert by_kind[Presence] == Presence(room="entity:order:7", users=1, connections=1)
    # The warning is answered by the client itself, with the next token.
    assert set(by_kind) == {Joined, Presence, TokenExpiring, TokenRefreshed}
    assert received.index(by_kind[TokenExpiring]) < received.index(by_kind[TokenRefreshed])


async def test_a_refused_token_ends_the_iteration_with_the_close_code(
    notifier_url: str,
) -> None:
    async with connect(ws(notifier_url), "not-a-jwt") as client:
        with pytest.raises(NotifierClosedError) as closed:
            await next_message(client.messages())

    assert closed.value.code == CLOSE_UNAUTHORIZED


async def test_client_rejoins_its_room_from_where_it_resumed_and_gets_what_the_room_missed(
    start_notifier: StartNotifier,
    redis_url: str,
    redis: Redis,
    make_token: TokenFactory,
    jwt_secret: str,
) -> None:
    """What a frontend does on each `Welcome`: join its entity rooms again, from `resumed_from`."""
    room = "entity:order:7"
    port = free_port()
    client = NotifierClient(
        f"ws://127.0.0.1:{port}/ws", make_token("alice"), backoff_min_s=0.05, backoff_max_s=0.2
    )
    messages = client.messages()
    try:
        async with start_notifier(redis_url, port=port):
            await next_message(messages)
            await client.join(await gateway_token(jwt_secret, make_token("alice"), room))
            first_join = await next_message(messages)
            await publish(redis, queued(room, job_id="before"))
            await next_push(messages)
        await publish(redis, queued(room, job_id="while-down"))
        async with start_notifier(redis_url, port=port):
            await next_message(messages)
            await publish(redis, queued("user:alice", job_id="newer"))
            newer = await next_push(messages)
            room_token = await gateway_token(jwt_secret, make_token("alice"), room)
            await client.join(room_token, since=client.resumed_from)
            recovered = await next_push(messages)
            # A recovered event older than one seen live does not take the offset back.
            offsets_after_recovery = dict(client.offsets)
            second_join = await next_message(messages)
            await publish(redis, queued(room, job_id="after"))
            live = await next_push(messages)
    finally:
        await client.close()

    assert first_join == second_join == Joined(room=room)
    assert (recovered.event.job_id, recovered.recovered) == ("while-down", True)
    assert (live.event.job_id, live.recovered) == ("after", False)
    assert offsets_after_recovery == {"default": newer.offset.partition(":")[2]}
