"""Ping/pong keepalive, as `python -m notifier` runs it: a peer that stops answering is dropped,
also one with events still buffered for it; one that answers stays."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from devstack.ports import LOOPBACK
from devstack.tokens import TokenFactory
from shared.contracts.ws import Welcome
from tests.notifier.process import NotifierProcesses
from tests.notifier.wire import completed, drain, next_push, receive, until, ws_url
from tests.notifier.wire import publish as publish_event

PING_INTERVAL_S = 0.2
PING_TIMEOUT_S = 0.4
# 6 MB: more than the kernel's socket buffers (4 MB at most here) take for a peer that does
# not read, so that some stays in the notifier for it; well within its send buffer.
EVENTS = 60


@pytest.fixture
def notifiers(
    tmp_path: Path, redis_url: str, database_url: str, jwt_secret: str
) -> NotifierProcesses:
    return NotifierProcesses(
        tmp_path, redis_url=redis_url, database_url=database_url, jwt_secret=jwt_secret
    )


def small_socket(base_url: str) -> socket.socket:
    """A TCP socket with a small receive buffer: a client that stops reading fills up soon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((LOOPBACK, int(base_url.rsplit(":", 1)[1])))
    return sock


async def close_after_reading(client: ClientConnection) -> Close | None:
    """Read until the connection ends; the close frame received, if one was."""
    with pytest.raises(ConnectionClosed) as closed:
        await drain(client)
    return closed.value.rcvd


@pytest.mark.slow
async def test_peers_that_stop_answering_pings_are_dropped_and_one_that_answers_stays(
    notifiers: NotifierProcesses, redis: Redis, make_token: TokenFactory
) -> None:
    settings = {
        "NOTIFIER_PING_INTERVAL_MS": str(int(PING_INTERVAL_S * 1000)),
        "NOTIFIER_PING_TIMEOUT_MS": str(int(PING_TIMEOUT_S * 1000)),
        "NOTIFIER_SEND_BUFFER_BYTES": str(64 * 2**20),
    }
    # Random, so that nothing could compress it below the buffers it has to fill.
    result = secrets.token_urlsafe(100_000)
    with notifiers.started(settings) as process:
        base_url = process.base_url
        async with httpx.AsyncClient(base_url=base_url) as http:

            async def connections() -> int:
                metrics = (await http.get("/metrics")).text
                (line,) = [
                    line
                    for line in metrics.splitlines()
                    if line.startswith("conduit_notifier_connections ")
                ]
                return int(float(line.split()[1]))

            async def only_one_left() -> bool:
                return await connections() == 1

            # The clients' own pings off: only the notifier's are at play.
            async with (
                connect(ws_url(base_url, make_token("silent")), ping_interval=None) as silent,
                connect(
                    ws_url(base_url, make_token("stuck")),
                    sock=small_socket(base_url),
                    max_queue=1,
                    ping_interval=None,
                ) as stuck,
                connect(ws_url(base_url, make_token("bob")), ping_interval=None) as alive,
            ):
                for client in (silent, stuck, alive):
                    assert isinstance(await receive(client), Welcome)
                # Peers whose process hangs: their TCP stack is up, nothing reads the pings.
                silent.transport.pause_reading()
                stuck.transport.pause_reading()
                silent_at = time.monotonic()
                # More than the stuck peer's socket takes: some stays buffered for it, and a
                # notifier that waited to hand that over would keep it for minutes.
                for number in range(EVENTS):
                    event = completed("user:stuck", "user:bob", job_id=f"j{number}", result=result)
                    await publish_event(redis, event)
                    await next_push(alive)
                await until(only_one_left, timeout_s=5)
                dropped_after_s = time.monotonic() - silent_at
                # Well past several pings, the answering client is still served.
                await asyncio.sleep(4 * PING_INTERVAL_S)
                await publish_event(redis, completed("user:bob", job_id="still-served"))
                push = await next_push(alive)
                left = await connections()
                silent.transport.resume_reading()
                stuck.transport.resume_reading()
                silent_close = await close_after_reading(silent)
                await close_after_reading(stuck)

    assert dropped_after_s < PING_INTERVAL_S + PING_TIMEOUT_S + 3
    assert push.event.job_id == "still-served"
    assert left == 1
    assert silent_close is not None
    assert (silent_close.code, silent_close.reason) == (1011, "keepalive ping timeout")
