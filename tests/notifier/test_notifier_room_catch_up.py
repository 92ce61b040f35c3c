"""Entity rooms catch up too: a `Join` with `since` gets what the room missed, once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from devstack.tokens import TokenFactory
from shared.contracts.ws import (
    Error,
    EventPush,
    Join,
    Joined,
    Resync,
    ServerMessage,
    Welcome,
    event_offset,
)
from shared.streams import QueueKeys
from tests.notifier.wire import gateway_token, next_push, publish, queued, receive, ws_url

ROOM = "entity:order:42"


async def join(client: ClientConnection, token: str, since: str | None) -> None:
    await client.send(msgspec.json.encode(Join(token=token, since=since)))


async def until_joined(client: ClientConnection) -> list[ServerMessage]:
    """Every message up to and with the `Joined`."""
    received = [await receive(client)]
    while not isinstance(received[-1], Joined):
        received.append(await receive(client))
    return received


def job_ids(messages: Sequence[ServerMessage]) -> list[tuple[str, bool]]:
    return [
        (message.event.job_id, message.recovered)
        for message in messages
        if isinstance(message, EventPush)
    ]


async def test_join_with_since_gets_the_rooms_missed_events_in_order_then_joined_then_live(
    notifier_url: str, redis: Redis, make_token: TokenFactory, jwt_secret: str
) -> None:
    since = event_offset("default", await publish(redis, queued(ROOM, job_id="seen")))
    await publish(redis, queued(ROOM, job_id="missed-1"))
    await publish(redis, queued("entity:order:43", job_id="other-order"))
    await publish(redis, queued(ROOM, job_id="missed-2"))
    room_token = await gateway_token(jwt_secret, make_token("alice"), ROOM)

    async with connect(ws_url(notifier_url, make_token("alice"))) as client:
        assert isinstance(await receive(client), Welcome)
        await join(client, room_token, since)
        received = await until_joined(client)
        await publish(redis, queued(ROOM, job_id="live"))
        live = await next_push(client)

    assert job_ids(received) == [("missed-1", True), ("missed-2", True)]
    assert received[-1] == Joined(room=ROOM)
    assert (live.event.job_id, live.recovered) == ("live", False)


async def test_an_event_had_through_another_room_is_not_sent_again(
    notifier_url: str, redis: Redis, make_token: TokenFactory, jwt_secret: str
) -> None:
    # A job of alice's about order 42 goes to both her user room and the order's room.
    since = event_offset("default", await publish(redis, queued(ROOM, "user:alice")))
    await publish(redis, queued(ROOM, job_id="order-only"))
    await publish(redis, queued(ROOM, "user:alice", job_id="both-while-away"))
    await publish(redis, queued("user:alice", job_id="user-only"))
    room_token = await gateway_token(jwt_secret, make_token("alice"), ROOM)

    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        assert isinstance(await receive(client), Welcome)
        caught_up = [await next_push(client) for _ in range(2)]
        await publish(redis, queued(ROOM, "user:alice", job_id="both-live"))
        live = await next_push(client)
        await join(client, room_token, since)
        joined = await until_joined(client)
        await publish(redis, queued(ROOM, "user:alice", job_id="both-after-join"))
        after = await next_push(client)

    assert job_ids(caught_up) == [("both-while-away", True), ("user-only", True)]
    assert (live.event.job_id, live.recovered) == ("both-live", False)
    # Only what the user room did not bring.
    assert job_ids(joined) == [("order-only", True)]
    # Once, though it is in two of the connection's rooms.
    assert (after.event.job_id, after.recovered) == ("both-after-join", False)


async def test_events_published_during_the_rooms_catch_up_arrive_once_without_a_gap(
    notifier_url: str, redis: Redis, make_token: TokenFactory, jwt_secret: str
) -> None:
    since = event_offset("default", await publish(redis, queued(ROOM, job_id="seen")))
    for number in range(300):
        await publish(redis, queued(ROOM, job_id=f"before-{number}"))
    room_token = await gateway_token(jwt_secret, make_token("alice"), ROOM)

    async def publish_during_catch_up() -> None:
        for number in range(300):
            await publish(redis, queued(ROOM, job_id=f"during-{number}"))
            # Some of the user's own events interleave; they are not the room's to recover.
            if number % 50 == 0:
                await publish(redis, queued("user:alice", job_id=f"user-{number}"))

    async with connect(ws_url(notifier_url, make_token("alice"))) as client:
        assert isinstance(await receive(client), Welcome)
        publishing = asyncio.create_task(publish_during_catch_up())
        await join(client, room_token, since)
        received = await until_joined(client)
        await publishing
        while sum(1 for job_id, _ in job_ids(received) if job_id.startswith("during-")) < 300:
            received.append(await next_push(client))
        while sum(1 for job_id, _ in job_ids(received) if job_id.startswith("user-")) < 6:
            received.append(await next_push(client))

    room_ids = [job_id for job_id, _ in job_ids(received) if not job_id.startswith("user-")]
    assert room_ids == [f"before-{n}" for n in range(300)] + [f"during-{n}" for n in range(300)]
    user_ids = [job_id for job_id, _ in job_ids(received) if job_id.startswith("user-")]
    assert user_ids == [f"user-{n}" for n in range(0, 300, 50)]


async def test_a_room_whose_history_is_gone_gets_a_resync_naming_it_then_joined(
    notifier_url: str, redis: Redis, make_token: TokenFactory, jwt_secret: str
) -> None:
    since = event_offset("default", await publish(redis, queued(ROOM, job_id="seen")))
    for number in range(5):
        await publish(redis, queued(ROOM, job_id=f"trimmed-{number}"))
    await redis.xtrim(QueueKeys("default").events, maxlen=2, approximate=False)
    room_token = await gateway_token(jwt_secret, make_token("alice"), ROOM)

    async with connect(ws_url(notifier_url, make_token("alice"))) as client:
        await receive(client)
        await join(client, room_token, since)
        received = await until_joined(client)

    assert len(received) == 2
    resync = received[0]
    assert isinstance(resync, Resync)
    assert (resync.queue, resync.room) == ("default", ROOM)
    assert "trimmed" in resync.reason


async def test_a_bad_since_refuses_the_join_and_the_connection_stays(
    notifier_url: str, redis: Redis, make_token: TokenFactory, jwt_secret: str
) -> None:
    room_token = await gateway_token(jwt_secret, make_token("alice"), ROOM)

    async with connect(ws_url(notifier_url, make_token("alice"))) as client:
        await receive(client)
        await join(client, room_token, "nowhere:1-0")
        refused = await receive(client)
        await publish(redis, queued(ROOM, job_id="not-joined"))
        await publish(redis, queued("user:alice", job_id="still-connected"))
        push = await next_push(client)

    assert refused == Error(reason="join refused: bad since: unknown queue 'nowhere'", room=ROOM)
    assert push.event.job_id == "still-connected"
