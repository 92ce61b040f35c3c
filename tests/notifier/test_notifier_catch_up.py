"""Catch-up by offset: what a reconnecting client missed, in order, once, or a resync."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from devstack.tokens import TokenFactory
from shared.contracts.ws import CLOSE_BAD_REQUEST, EventPush, Resync, Welcome, event_offset
from shared.streams import QueueKeys
from tests.notifier.wire import (
    close_code,
    dead_lettered,
    next_push,
    publish,
    queued,
    receive,
    ws_url,
)

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]


async def test_reconnect_with_offset_gets_missed_events_of_its_rooms_in_order_then_live(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    seen = await publish(redis, queued("user:alice", job_id="seen"))
    await publish(redis, queued("user:alice", job_id="missed-1"))
    await publish(redis, queued("user:bob", job_id="for-bob"))
    await publish(redis, queued("role:USER", job_id="missed-2"))
    since = event_offset("default", seen)

    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        assert isinstance(await receive(client), Welcome)
        first, second = await next_push(client), await next_push(client)
        await publish(redis, queued("user:alice", job_id="live"))
        live = await next_push(client)

    assert [(push.event.job_id, push.recovered) for push in (first, second, live)] == [
        ("missed-1", True),
        ("missed-2", True),
        ("live", False),
    ]
    assert first.offset < second.offset < live.offset


async def test_recovered_events_are_redacted_for_users_and_complete_for_admins(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    since = event_offset("default", await publish(redis, queued("user:alice")))
    await publish(redis, dead_lettered("user:alice", "role:ADMIN"))

    async with (
        connect(ws_url(notifier_url, make_token("alice"), since)) as alice,
        connect(ws_url(notifier_url, make_token("root", "ADMIN"), since)) as root,
    ):
        await receive(alice), await receive(root)
        user_push, admin_push = await next_push(alice), await next_push(root)

    assert user_push.event == dead_lettered("user:alice", "role:ADMIN", detail="")
    assert admin_push.event == dead_lettered("user:alice", "role:ADMIN")


async def test_events_published_during_catch_up_arrive_once_without_a_gap(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    since = event_offset("default", await publish(redis, queued("user:alice", job_id="seen")))
    for number in range(300):
        await publish(redis, queued("user:alice", job_id=f"before-{number}"))

    async def publish_during_catch_up() -> list[str]:
        return [
            await publish(redis, queued("user:alice", job_id=f"during-{number}"))
            for number in range(300)
        ]

    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        assert isinstance(await receive(client), Welcome)
        publishing = asyncio.create_task(publish_during_catch_up())
        pushes = [await next_push(client) for _ in range(600)]
        await publishing

    job_ids = [push.event.job_id for push in pushes]
    assert job_ids == [f"before-{n}" for n in range(300)] + [f"during-{n}" for n in range(300)]
    assert [push.offset for push in pushes] == sorted(
        (push.offset for push in pushes), key=lambda offset: tuple(map(int, offset[8:].split("-")))
    )
    assert any(push.recovered for push in pushes)


async def test_catch_up_works_after_a_restart_and_on_another_instance(
    start_notifier: StartNotifier, redis_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    async with (
        start_notifier(redis_url) as first_url,
        connect(ws_url(first_url, make_token("alice"))) as client,
    ):
        await receive(client)
        await publish(redis, queued("user:alice", job_id="seen"))
        last_seen = (await next_push(client)).offset
    await publish(redis, queued("user:alice", job_id="while-away"))

    async with (
        start_notifier(redis_url) as second_url,
        connect(ws_url(second_url, make_token("alice"), last_seen)) as client,
    ):
        await receive(client)
        push = await next_push(client)

    assert (push.event.job_id, push.recovered) == ("while-away", True)


async def test_offsets_of_two_queues_each_catch_up_their_own_queue(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    since_default = await publish(redis, queued("user:alice", job_id="seen-default"))
    since_emails = await publish(redis, queued("user:alice", job_id="seen-emails"), "emails")
    await publish(redis, queued("user:alice", job_id="missed-emails"), "emails")
    await publish(redis, queued("user:alice", job_id="missed-default"))
    since = f"default:{since_default},emails:{since_emails}"

    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        await receive(client)
        pushes = {(await next_push(client)).event.job_id for _ in range(2)}

    assert pushes == {"missed-default", "missed-emails"}


async def test_offset_older_than_the_trimmed_history_gets_a_resync_then_live_events(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    since = event_offset("default", await publish(redis, queued("user:alice", job_id="seen")))
    for number in range(5):
        await publish(redis, queued("user:alice", job_id=f"trimmed-{number}"))
    await redis.xtrim(QueueKeys("default").events, maxlen=2, approximate=False)

    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        await receive(client)
        resync = await receive(client)
        await publish(redis, queued("user:alice", job_id="live"))
        live = await next_push(client)

    assert isinstance(resync, Resync)
    assert resync.queue == "default"
    assert "trimmed" in resync.reason
    assert (live.event.job_id, live.recovered) == ("live", False)


async def test_offset_before_a_deleted_event_gets_a_resync(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    since = event_offset("default", await publish(redis, queued("user:alice")))
    deleted = await publish(redis, queued("user:alice", job_id="deleted"))
    await publish(redis, queued("user:alice", job_id="kept"))
    await redis.xdel(QueueKeys("default").events, deleted)

    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        await receive(client)
        resync = await receive(client)

    assert isinstance(resync, Resync)


async def test_offset_ahead_of_a_reset_stream_gets_a_resync(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    await publish(redis, queued("user:alice"))

    async with connect(ws_url(notifier_url, make_token("alice"), "default:99999999999999-0")) as ws:
        await receive(ws)
        resync = await receive(ws)

    assert isinstance(resync, Resync)
    assert "reset" in resync.reason


async def test_more_missed_events_than_the_recovery_limit_gets_a_resync(
    start_notifier: StartNotifier, redis_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    since = event_offset("default", await publish(redis, queued("user:alice")))
    for _ in range(6):
        await publish(redis, queued("user:alice"))

    async with (
        start_notifier(redis_url, catch_up_max_entries=5, catch_up_page_size=2) as base_url,
        connect(ws_url(base_url, make_token("alice"), since)) as client,
    ):
        await receive(client)
        resync = await receive(client)

    assert isinstance(resync, Resync)
    assert "more than 5" in resync.reason


async def test_offset_of_the_last_event_recovers_nothing_and_live_events_follow(
    notifier_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    since = event_offset("default", await publish(redis, queued("user:alice", job_id="last")))

    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        await receive(client)
        await publish(redis, queued("user:alice", job_id="next"))
        push = await next_push(client)

    assert isinstance(push, EventPush)
    assert (push.event.job_id, push.recovered) == ("next", False)


@pytest.mark.parametrize(
    "since",
    [
        pytest.param("default", id="no entry id"),
        pytest.param("default:abc", id="not an entry id"),
        pytest.param("nowhere:1-0", id="unknown queue"),
        pytest.param("default:1-0,default:2-0", id="queue twice"),
    ],
)
async def test_malformed_since_is_closed_with_4400_and_says_why(
    notifier_url: str, make_token: TokenFactory, since: str
) -> None:
    async with connect(ws_url(notifier_url, make_token("alice"), since)) as client:
        code, reason = await close_code(client)

    assert code == CLOSE_BAD_REQUEST
    assert reason.startswith("bad since")
