"""Presence: who is connected in a room, across notifier instances; the list only for admins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import jwt
import msgspec
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from devstack.tokens import TokenFactory
from notifier.presence import RedisPresence, RoomPresence
from shared.contracts.ws import Error, Join, Joined, Presence, PresenceQuery, ServerMessage
from tests.notifier.wire import receive, ws_url

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]
ROOM = "entity:order:1"


async def ask(client: ClientConnection, room: str) -> ServerMessage:
    await client.send(msgspec.json.encode(PresenceQuery(room=room)))
    return await receive(client)


async def join(client: ClientConnection, jwt_secret: str, sub: str) -> None:
    claims = {"sub": sub, "room": ROOM, "typ": "subscription", "exp": 10**10}
    await client.send(msgspec.json.encode(Join(token=jwt.encode(claims, jwt_secret))))
    assert await receive(client) == Joined(room=ROOM)


async def test_presence_counts_users_on_every_instance_and_lists_them_for_admins(
    start_notifier: StartNotifier, redis_url: str, make_token: TokenFactory, jwt_secret: str
) -> None:
    async with (
        start_notifier(redis_url, presence_flush_ms=20) as first,
        start_notifier(redis_url, presence_flush_ms=20) as second,
        connect(ws_url(first, make_token("alice"))) as alice,
        connect(ws_url(first, make_token("alice"))) as alice_again,
        connect(ws_url(second, make_token("bob"))) as bob,
        connect(ws_url(second, make_token("root", "ADMIN"))) as root,
    ):
        for client, sub in ((alice, "alice"), (alice_again, "alice"), (bob, "bob")):
            await receive(client)
            await join(client, jwt_secret, sub)
        await receive(root)
        await asyncio.sleep(0.1)
        for_admin = await ask(root, ROOM)
        for_user = await ask(alice, ROOM)
        await bob.close()
        await asyncio.sleep(0.2)
        after_bob_left = await ask(root, ROOM)

    assert for_admin == Presence(room=ROOM, users=2, connections=3, subs=("alice", "bob"))
    assert for_user == Presence(room=ROOM, users=2, connections=3)
    assert after_bob_left == Presence(room=ROOM, users=1, connections=2, subs=("alice",))


async def test_users_may_ask_only_about_their_rooms_and_admins_about_any_user_room(
    notifier_url: str, make_token: TokenFactory
) -> None:
    async with (
        connect(ws_url(notifier_url, make_token("alice"))) as alice,
        connect(ws_url(notifier_url, make_token("root", "ADMIN"))) as root,
    ):
        await receive(alice)
        await receive(root)
        own = await ask(alice, "user:alice")
        foreign = await ask(alice, "user:root")
        role_room = await ask(root, "role:USER")
        admin_asks = await ask(root, "user:alice")

    assert own == Presence(room="user:alice", users=1, connections=1)
    assert foreign == Error(reason="presence refused: not in this room", room="user:root")
    assert isinstance(role_room, Error)
    assert "user and entity rooms only" in role_room.reason
    assert admin_asks == Presence(room="user:alice", users=1, connections=1, subs=("alice",))


async def test_connections_of_an_instance_that_stops_renewing_lapse_after_the_ttl(
    redis: Redis,
) -> None:
    crashed = RedisPresence(redis, "crashed", ttl_ms=300, flush_ms=10)
    alive = RedisPresence(redis, "alive", ttl_ms=300, flush_ms=10)
    crashed.enter(crashed.member("alice"), [ROOM])
    alive.enter(alive.member("bob"), [ROOM])

    async with asyncio.TaskGroup() as tasks:
        crashing = tasks.create_task(crashed.run())
        renewing = tasks.create_task(alive.run())
        await asyncio.sleep(0.05)
        both = await alive.of(ROOM)
        crashing.cancel()
        await asyncio.sleep(0.6)
        present = await alive.of(ROOM)
        renewing.cancel()

    assert both == RoomPresence(subs=("alice", "bob"), connections=2)
    assert present == RoomPresence(subs=("bob",), connections=1)
