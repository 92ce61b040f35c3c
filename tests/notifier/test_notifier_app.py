"""The notifier served for real: handshake auth, room fan-out from Redis, probes and metrics."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from devstack.ports import LOOPBACK, free_port
from devstack.servers import RedisServer
from devstack.tokens import TokenFactory, mint_token
from shared.contracts.ws import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNAUTHORIZED,
    Error,
    Welcome,
)
from shared.streams import DATA_FIELD, QueueKeys
from tests.notifier.wire import (
    close_code,
    completed,
    dead_lettered,
    drain,
    next_push,
    publish,
    queued,
    receive,
    ws_url,
)

# The fixtures `subscribe` and `start_notifier` of this folder's conftest.
Subscribe = Callable[..., AbstractAsyncContextManager[ClientConnection]]
StartNotifier = Callable[..., AbstractAsyncContextManager[str]]


async def test_welcome_names_the_user_and_the_rooms_joined(
    notifier_url: str, make_token: TokenFactory
) -> None:
    async with connect(ws_url(notifier_url, make_token("root", "ADMIN"))) as client:
        welcome = await receive(client)

    assert welcome == Welcome(sub="root", role="ADMIN", rooms=("user:root", "role:ADMIN"))


async def test_event_for_alice_reaches_alice_and_not_bob(
    subscribe: Subscribe, redis: Redis
) -> None:
    async with subscribe("alice") as alice, subscribe("bob") as bob:
        entry_id = await publish(redis, queued("user:alice", job_id="for-alice"))
        await publish(redis, queued("user:bob", job_id="for-bob"))

        alice_push = await next_push(alice)
        bob_push = await next_push(bob)

    assert alice_push.offset == f"default:{entry_id}"
    assert alice_push.event == queued("user:alice", job_id="for-alice")
    # A client gets events in stream order, so bob's first being his own proves alice's skipped him.
    assert bob_push.event.job_id == "for-bob"


async def test_connection_in_two_rooms_of_an_event_gets_it_once(
    subscribe: Subscribe, redis: Redis
) -> None:
    async with subscribe("root", "ADMIN") as root:
        await publish(redis, queued("user:root", "role:ADMIN", job_id="both-rooms"))
        await publish(redis, queued("role:ADMIN", job_id="next"))

        first, second = await next_push(root), await next_push(root)

    assert (first.event.job_id, second.event.job_id) == ("both-rooms", "next")


async def test_admin_sees_the_error_detail_and_the_user_only_the_message(
    subscribe: Subscribe, redis: Redis
) -> None:
    async with subscribe("alice") as alice, subscribe("root", "ADMIN") as root:
        await publish(redis, dead_lettered("user:alice", "role:ADMIN"))

        user_push, admin_push = await next_push(alice), await next_push(root)

    assert admin_push.event == dead_lettered("user:alice", "role:ADMIN")
    assert user_push.event == dead_lettered("user:alice", "role:ADMIN", detail="")


async def test_events_of_every_configured_queue_arrive_with_their_queue_in_the_offset(
    subscribe: Subscribe, redis: Redis
) -> None:
    async with subscribe("alice") as alice:
        entry_id = await publish(redis, queued("user:alice", queue="emails"), queue="emails")

        push = await next_push(alice)

    assert push.offset == f"emails:{entry_id}"


async def test_undecodable_entry_is_skipped_and_later_events_still_arrive(
    subscribe: Subscribe, redis: Redis
) -> None:
    async with subscribe("alice") as alice:
        events = QueueKeys("default").events
        await redis.xadd(events, {DATA_FIELD: b'{"event":"job.unknown"}'})
        await redis.xadd(events, {"other": b"field"})
        await publish(redis, queued("user:alice", job_id="after-garbage"))

        push = await next_push(alice)

    assert push.event.job_id == "after-garbage"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param(mint_token("x" * 40, "alice"), id="signed-with-another-secret"),
    ],
)
async def test_connection_without_a_valid_token_is_accepted_then_closed_with_4401(
    notifier_url: str, token: str | None
) -> None:
    async with connect(ws_url(notifier_url, token)) as client:
        code, reason = await close_code(client)

    assert code == CLOSE_UNAUTHORIZED
    assert reason.startswith("unauthorized")


async def test_expired_token_is_closed_with_4401(
    notifier_url: str, make_token: TokenFactory
) -> None:
    async with connect(ws_url(notifier_url, make_token("alice", ttl_s=-10))) as client:
        code, _ = await close_code(client)

    assert code == CLOSE_UNAUTHORIZED


async def test_events_flow_again_after_redis_restarts(
    subscribe: Subscribe, redis: Redis, redis_server: RedisServer
) -> None:
    async with subscribe("alice") as alice:
        await publish(redis, queued("user:alice", job_id="before"))
        assert (await next_push(alice)).event.job_id == "before"

        await asyncio.to_thread(redis_server.restart)
        # The test's own client would first fail on its connection to the old server.
        await redis.connection_pool.disconnect()
        await publish(redis, queued("user:alice", job_id="after"))

        assert (await next_push(alice)).event.job_id == "after"


async def test_probes_and_metrics_are_served(
    notifier_url: str, subscribe: Subscribe, redis: Redis
) -> None:
    async with subscribe("alice") as alice:
        await publish(redis, queued("user:alice"))
        await next_push(alice)
        async with httpx.AsyncClient(base_url=notifier_url) as http:
            livez, readyz, metrics = (
                await http.get("/livez"),
                await http.get("/readyz"),
                await http.get("/metrics"),
            )

    assert (livez.status_code, livez.json()) == (200, {"status": "pass"})
    assert (readyz.status_code, readyz.json()) == (200, {"status": "pass"})
    assert "conduit_notifier_connections 1.0" in metrics.text
    assert "conduit_notifier_messages_sent_total 1.0" in metrics.text
    assert "conduit_notifier_push_latency_seconds_count 1.0" in metrics.text


async def test_notifier_starts_without_redis_and_says_it_is_not_ready(
    start_notifier: StartNotifier,
) -> None:
    async with (
        start_notifier(f"redis://{LOOPBACK}:{free_port()}/0", ready=False) as base_url,
        httpx.AsyncClient(base_url=base_url) as http,
    ):
        livez, readyz = await http.get("/livez"), await http.get("/readyz")

    assert livez.status_code == 200
    assert readyz.status_code == 503
    assert readyz.json()["status"] == "fail"


async def test_client_that_stops_reading_is_dropped_without_holding_back_others(
    start_notifier: StartNotifier, redis_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    # Random, so that no compression could shrink it below the buffers it has to fill.
    events, result = 150, secrets.token_urlsafe(75_000)
    async with start_notifier(redis_url, close_timeout_ms=20_000) as base_url:
        # A small receive buffer, and a client-side queue of one message: once both are full the
        # notifier's write buffer for this client fills and stays full.
        stuck_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stuck_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck_socket.connect((LOOPBACK, int(base_url.rsplit(":", 1)[1])))
        async with (
            connect(ws_url(base_url, make_token("alice")), sock=stuck_socket, max_queue=1) as stuck,
            connect(ws_url(base_url, make_token("bob"))) as reader,
        ):
            assert isinstance(await receive(stuck), Welcome)
            assert isinstance(await receive(reader), Welcome)
            received: list[str] = []
            for number in range(events):
                await publish(redis, completed("role:USER", job_id=f"job-{number}", result=result))
                received.append((await next_push(reader)).event.job_id)
            async with httpx.AsyncClient(base_url=base_url) as http:
                metrics = (await http.get("/metrics")).text

            # Reading again, the stuck client gets what was buffered, then the close.
            with pytest.raises(ConnectionClosed) as closed:
                await drain(stuck)

    assert received == [f"job-{number}" for number in range(events)]
    assert "conduit_notifier_connections 1.0" in metrics
    assert "conduit_notifier_connections_dropped_total 1.0" in metrics
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CLOSE_SLOW_CONSUMER == 4408


async def test_message_over_the_size_limit_closes_with_1009_and_says_the_limit(
    start_notifier: StartNotifier, redis_url: str, make_token: TokenFactory
) -> None:
    async with (
        start_notifier(redis_url, max_message_bytes=1_000) as base_url,
        connect(ws_url(base_url, make_token("alice"))) as client,
    ):
        assert isinstance(await receive(client), Welcome)
        await client.send("x" * 1_001)
        code, reason = await close_code(client)

    assert (code, reason) == (CLOSE_MESSAGE_TOO_BIG, "message too big: limit 1000 bytes")


async def test_message_within_the_size_limit_keeps_the_connection(
    start_notifier: StartNotifier, redis_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    async with (
        start_notifier(redis_url, max_message_bytes=1_000) as base_url,
        connect(ws_url(base_url, make_token("alice"))) as client,
    ):
        assert isinstance(await receive(client), Welcome)
        refresh = b'{"type":"refresh","token":"%s"}' % (b"x" * 971)
        assert len(refresh) == 1_000
        await client.send(refresh)
        answer = await receive(client)
        await publish(redis, queued("user:alice", job_id="still-here"))

        push = await next_push(client)

    assert isinstance(answer, Error)
    assert answer.reason.startswith("refresh refused")
    assert push.event.job_id == "still-here"
