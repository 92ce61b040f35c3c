"""Entity rooms: joined with the gateway's subscription token, left again, refused clearly."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import jwt
import msgspec
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from devstack.tokens import TokenFactory
from shared.contracts.ws import Error, Join, Joined, Leave, Left
from tests.notifier.wire import gateway_token, next_push, publish, queued, receive, ws_url

Subscribe = Callable[..., AbstractAsyncContextManager[ClientConnection]]
StartNotifier = Callable[..., AbstractAsyncContextManager[str]]


def signed(jwt_secret: str, **claims: object) -> str:
    """A token with exactly these claims, signed with the shared secret."""
    return jwt.encode(claims, jwt_secret, algorithm="HS256")


async def send(client: ClientConnection, message: Join | Leave) -> None:
    await client.send(msgspec.json.encode(message))


async def test_joined_entity_room_delivers_its_events_and_no_other_entitys(
    subscribe: Subscribe, redis: Redis, make_token: TokenFactory, jwt_secret: str
) -> None:
    token = await gateway_token(jwt_secret, make_token("alice"), "entity:order:42")
    async with subscribe("alice") as alice:
        await send(alice, Join(token=token))
        joined = await receive(alice)
        await publish(redis, queued("entity:order:43", job_id="other-order"))
        await publish(redis, queued("entity:order:42", job_id="this-order"))

        push = await next_push(alice)

    assert joined == Joined(room="entity:order:42")
    assert push.event.job_id == "this-order"


async def test_left_entity_room_delivers_nothing_more(
    subscribe: Subscribe, redis: Redis, make_token: TokenFactory, jwt_secret: str
) -> None:
    token = await gateway_token(jwt_secret, make_token("alice"), "entity:order:42")
    async with subscribe("alice") as alice:
        await send(alice, Join(token=token))
        await receive(alice)
        await send(alice, Leave(room="entity:order:42"))
        left = await receive(alice)
        await publish(redis, queued("entity:order:42", job_id="after-leave"))
        await publish(redis, queued("user:alice", job_id="own"))

        push = await next_push(alice)

    assert left == Left(room="entity:order:42")
    assert push.event.job_id == "own"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param(
            {"sub": "bob", "room": "entity:order:1", "typ": "subscription"},
            "another user",
            id="another user's token",
        ),
        pytest.param(
            {"sub": "alice", "room": "user:bob", "typ": "subscription"},
            "not an entity room",
            id="user room",
        ),
        pytest.param(
            {"sub": "alice", "role": "USER"},
            "join refused",
            id="access token",
        ),
        pytest.param(
            {"sub": "alice", "room": "entity:order:1", "typ": "subscription", "exp": 1},
            "expired",
            id="expired",
        ),
    ],
)
async def test_join_with_a_token_that_does_not_allow_it_is_refused_with_a_reason(
    subscribe: Subscribe, jwt_secret: str, claims: dict[str, object], reason: str
) -> None:
    token = signed(jwt_secret, **{"exp": int(time.time()) + 60, **claims})
    async with subscribe("alice") as alice:
        await send(alice, Join(token=token))
        answer = await receive(alice)

    assert isinstance(answer, Error)
    assert answer.reason.startswith("join refused")
    assert reason in answer.reason


async def test_join_with_a_token_signed_by_another_secret_is_refused(subscribe: Subscribe) -> None:
    token = signed("x" * 40, sub="alice", room="entity:order:1", typ="subscription", exp=10**10)
    async with subscribe("alice") as alice:
        await send(alice, Join(token=token))
        answer = await receive(alice)

    assert isinstance(answer, Error)
    assert "Signature" in answer.reason


async def test_leaving_a_room_not_joined_or_an_own_room_is_refused(subscribe: Subscribe) -> None:
    async with subscribe("alice") as alice:
        await send(alice, Leave(room="entity:order:9"))
        not_joined = await receive(alice)
        await send(alice, Leave(room="user:alice"))
        own_room = await receive(alice)

    assert not_joined == Error(reason="leave refused: not in this room", room="entity:order:9")
    assert own_room == Error(reason="leave refused: not an entity room", room="user:alice")


async def test_entity_rooms_per_connection_are_capped(
    start_notifier: StartNotifier, redis_url: str, make_token: TokenFactory, jwt_secret: str
) -> None:
    def join_token(room: str) -> str:
        claims = {"sub": "alice", "room": room, "typ": "subscription", "exp": 10**10}
        return signed(jwt_secret, **claims)

    async with (
        start_notifier(redis_url, max_entity_rooms=1) as base_url,
        connect(ws_url(base_url, make_token("alice"))) as alice,
    ):
        await receive(alice)
        await send(alice, Join(token=join_token("entity:order:1")))
        first = await receive(alice)
        await send(alice, Join(token=join_token("entity:order:1")))
        again = await receive(alice)
        await send(alice, Join(token=join_token("entity:order:2")))
        over = await receive(alice)

    assert first == again == Joined(room="entity:order:1")
    assert over == Error(reason="join refused: at most 1 entity rooms", room="entity:order:2")
