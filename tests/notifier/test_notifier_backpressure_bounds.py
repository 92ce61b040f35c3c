"""The send buffer of one connection: bounded in messages and in bytes, 4408 past either.

First the buffer alone, on a socket whose sends wait while it is shut (as uvicorn's wait while
the transport's buffer is full); then real clients that stop reading, against a real notifier,
coming back by offset.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import pytest
from litestar import WebSocket
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from devstack.ports import LOOPBACK
from devstack.tokens import TokenFactory
from notifier.auth import Identity
from notifier.connection import SocketConnection
from notifier.frames import TextFrame
from notifier.settings import NotifierSettings
from shared.contracts.ws import CLOSE_SLOW_CONSUMER, EventPush, Welcome
from shared.settings import SettingsError, from_env
from tests.notifier.wire import RECEIVE_TIMEOUT_S, completed, next_push, publish, receive, ws_url

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]

ALICE = Identity(sub="alice", role="USER", expires_at=time.time() + 3600)


class ShutSocket:
    """A WebSocket whose sends wait while it is shut, keeping what was written, in order."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.written: list[str] = []
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # Another server than the notifier's own: sends go through `send_data`.
        self.scope: dict[str, Any] = {"type": "websocket", "extensions": {}}

    async def send_data(self, data: str) -> None:
        await self.open.wait()
        self.written.append(data)

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()


class Idle:
    """A message handler that is never due and ignores messages."""

    def wake_at(self) -> float:
        return time.time() + 3600

    async def on_wake(self) -> None:
        raise AssertionError("not due")

    async def on_message(self, message: bytes) -> None:
        return None


def connection_on(
    shut: ShutSocket, *, messages: int = 100, max_bytes: int = 1 << 20
) -> SocketConnection:
    return SocketConnection(
        cast(WebSocket[Any, Any, Any], shut),
        ALICE,
        max_message_bytes=4096,
        max_buffer_messages=messages,
        max_buffer_bytes=max_bytes,
    )


async def serve_client(connection: SocketConnection) -> None:
    """What the endpoint does for a client after its welcome: its own task, until it ends."""
    async with connection.lifetime():
        await connection.wait_until_done(Idle())


async def test_pushes_go_straight_to_a_socket_that_takes_them() -> None:
    shut = ShutSocket()
    connection = connection_on(shut)

    results = [await connection.push(TextFrame(f"frame-{n}"), f"default:{n}-0") for n in range(3)]

    assert results == [True, True, True]
    assert shut.written == ["frame-0", "frame-1", "frame-2"]
    assert connection.buffered == (0, 0)


async def test_pushes_to_a_waiting_socket_are_buffered_then_written_in_order_by_its_own_task() -> (
    None
):
    shut = ShutSocket()
    connection = connection_on(shut)
    client_task = asyncio.create_task(serve_client(connection))
    await asyncio.sleep(0)
    shut.open.clear()

    results = [await connection.push(TextFrame(f"frame-{n}"), f"default:{n}-0") for n in range(5)]
    buffered_while_shut = connection.buffered
    shut.open.set()
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        while connection.buffered != (0, 0):  # noqa: ASYNC110 - the client's task writes
            await asyncio.sleep(0.001)
    straight = await connection.push(TextFrame("frame-5"), "default:5-0")
    written_at_once = list(shut.written)
    client_task.cancel()

    assert results == [True] * 5
    assert buffered_while_shut == (5, 5 * len("frame-0"))
    assert straight is True
    assert written_at_once == [f"frame-{n}" for n in range(6)]


async def test_past_the_message_bound_the_client_is_closed_4408_and_its_buffer_freed() -> None:
    shut = ShutSocket()
    connection = connection_on(shut, messages=3)
    client_task = asyncio.create_task(serve_client(connection))
    await asyncio.sleep(0)
    shut.open.clear()

    results = [await connection.push(TextFrame(f"frame-{n}"), f"default:{n}-0") for n in range(4)]
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        await client_task

    assert results == [True, True, True, False]
    assert connection.close_with == (
        CLOSE_SLOW_CONSUMER,
        "slow consumer: more than 3 messages waiting",
    )
    assert connection.buffered == (0, 0)
    assert shut.written == []
    assert await connection.push(TextFrame("later"), "default:9-0") is False


async def test_past_the_byte_bound_the_client_is_closed_4408_counting_utf8_bytes() -> None:
    shut = ShutSocket()
    # 300 bytes of UTF-8 in 150 characters: three fit in 1,024 bytes, a fourth does not.
    frame = "é" * 150
    connection = connection_on(shut, max_bytes=1_024)
    client_task = asyncio.create_task(serve_client(connection))
    await asyncio.sleep(0)
    shut.open.clear()

    results = [await connection.push(TextFrame(frame), f"default:{n}-0") for n in range(4)]
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        await client_task

    assert results == [True, True, True, False]
    assert connection.close_with == (
        CLOSE_SLOW_CONSUMER,
        "slow consumer: more than 1024 bytes waiting",
    )
    assert connection.buffered == (0, 0)


async def test_pushes_held_during_catch_up_are_written_after_it_minus_those_recovered() -> None:
    shut = ShutSocket()
    connection = connection_on(shut, messages=3)
    holding = await connection.hold_live_events()

    held = [await connection.push(TextFrame(f"live-{n}"), f"default:{n}-0") for n in (1, 2, 3)]
    buffered = connection.buffered
    await connection.send("history-2")
    # The history was of another room than live-1's: only live-2 was recovered.
    released = await connection.release_live_events({"default:2-0"})
    straight = await connection.push(TextFrame("live-4"), "default:4-0")

    assert (holding, held) == (True, [True, True, True])
    # Held, not written, even though the socket would take them.
    assert buffered[0] == 3
    assert released is True
    assert straight is True
    assert shut.written == ["history-2", "live-1", "live-3", "live-4"]


async def test_holding_writes_what_was_buffered_before_first() -> None:
    shut = ShutSocket()
    connection = connection_on(shut, messages=3)
    shut.open.clear()
    buffered = await connection.push(TextFrame("before"), "default:1-0")
    shut.open.set()

    holding = await connection.hold_live_events()
    held = await connection.push(TextFrame("held"), "default:2-0")
    await connection.send("history")
    released = await connection.release_live_events(set())

    assert (buffered, holding, held, released) == (True, True, True, True)
    assert shut.written == ["before", "history", "held"]


async def test_too_many_pushes_during_catch_up_close_the_client_4408() -> None:
    shut = ShutSocket()
    connection = connection_on(shut, messages=2)
    await connection.hold_live_events()

    held = [await connection.push(TextFrame(f"live-{n}"), f"default:{n}-0") for n in (1, 2, 3)]
    released = await connection.release_live_events(set())

    assert held == [True, True, False]
    assert released is False
    assert connection.close_with == (
        CLOSE_SLOW_CONSUMER,
        "slow consumer: more than 2 messages waiting",
    )


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"NOTIFIER_SEND_BUFFER_MESSAGES": "0"}, id="no messages"),
        pytest.param({"NOTIFIER_SEND_BUFFER_BYTES": "1000"}, id="under 1 KiB"),
    ],
)
def test_send_buffer_settings_refuse_a_buffer_that_holds_nothing(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="NOTIFIER_SEND_BUFFER"):
        from_env(NotifierSettings, environ)


def test_send_buffer_settings_are_read_from_the_environment() -> None:
    environ = {"NOTIFIER_SEND_BUFFER_MESSAGES": "7", "NOTIFIER_SEND_BUFFER_BYTES": "65536"}

    settings = from_env(NotifierSettings, environ)

    assert (settings.send_buffer_messages, settings.send_buffer_bytes) == (7, 65_536)


def stuck_socket(base_url: str) -> socket.socket:
    """A TCP socket with a small receive buffer, so that a client that does not read fills up."""
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect((LOOPBACK, int(base_url.rsplit(":", 1)[1])))
    return stuck


async def pushes_until_closed(client: ClientConnection) -> tuple[list[EventPush], Close | None]:
    """Every event the client reads until the close, and the close."""
    pushes: list[EventPush] = []
    try:
        while True:
            message = await receive(client)
            assert isinstance(message, EventPush)
            pushes.append(message)
    except ConnectionClosed as closed:
        return pushes, closed.rcvd


@pytest.mark.parametrize(
    "bound",
    [
        pytest.param(
            ({"send_buffer_messages": 5, "send_buffer_bytes": 1 << 26}, "more than 5 messages"),
            id="messages",
        ),
        pytest.param(
            (
                {"send_buffer_messages": 10_000, "send_buffer_bytes": 300_000},
                "more than 300000 bytes",
            ),
            id="bytes",
        ),
    ],
)
async def test_client_that_stops_reading_is_closed_4408_at_the_bound_and_catches_up_by_offset(
    start_notifier: StartNotifier,
    redis_url: str,
    redis: Redis,
    make_token: TokenFactory,
    bound: tuple[dict[str, int], str],
) -> None:
    limits, over = bound
    # Random, so that nothing could compress it below the buffers it has to fill.
    events, result = 120, secrets.token_urlsafe(60_000)
    job_ids = [f"job-{number}" for number in range(events)]
    async with start_notifier(redis_url, close_timeout_ms=20_000, **limits) as base_url:
        async with (
            connect(
                ws_url(base_url, make_token("alice")), sock=stuck_socket(base_url), max_queue=1
            ) as stuck,
            connect(ws_url(base_url, make_token("bob"))) as reader,
        ):
            assert isinstance(await receive(stuck), Welcome)
            assert isinstance(await receive(reader), Welcome)
            read: list[str] = []
            for job_id in job_ids:
                await publish(redis, completed("role:USER", job_id=job_id, result=result))
                read.append((await next_push(reader)).event.job_id)
            # Reading again, the stuck client gets what was on its way, then the close.
            before_close, closed = await pushes_until_closed(stuck)
        last_offset = before_close[-1].offset
        async with connect(ws_url(base_url, make_token("alice"), since=last_offset)) as back:
            assert isinstance(await receive(back), Welcome)
            recovered = [await next_push(back) for _ in range(events - len(before_close))]

    assert read == job_ids
    assert closed is not None
    assert (closed.code, closed.reason) == (CLOSE_SLOW_CONSUMER, f"slow consumer: {over} waiting")
    assert 0 < len(before_close) < events
    received = [push.event.job_id for push in before_close + recovered]
    assert received == job_ids
    assert all(push.recovered for push in recovered)
