"""Tiny real HTTP peers for the health service's probes, a worker's heartbeat, and the app
served by uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import msgspec
import pytest
from litestar import Litestar
from redis.asyncio import Redis

from devstack.ports import LOOPBACK, free_port
from shared.clock import now_ms
from shared.heartbeats import Heartbeat, publish
from tests.serving import serving

# The worker tests' fixture, for the heartbeat tests: real worker processes on the test's Redis.
from tests.worker.conftest import spawn_worker  # noqa: F401

_LIVEZ_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 17\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b'{"status":"pass"}'
)


@asynccontextmanager
async def tcp_server(answer: bool) -> AsyncIterator[str]:
    """A server on a free loopback port that answers `/livez` with 200, or accepts and hangs."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            if answer:
                writer.write(_LIVEZ_RESPONSE)
                await writer.drain()
            else:
                await asyncio.Event().wait()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.close()
        # On Python 3.11 closing the server leaves accepted connections (and hung handlers) open.
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
async def livez_urls() -> AsyncIterator[dict[str, str]]:
    """Base URLs of three servers answering `/livez`, by service name."""
    async with (
        tcp_server(answer=True) as gateway,
        tcp_server(answer=True) as notifier,
        tcp_server(answer=True) as worker,
    ):
        yield {"gateway": gateway, "notifier": notifier, "worker": worker}


@pytest.fixture
async def hung_url() -> AsyncIterator[str]:
    """Base URL of a server that accepts connections and reads requests but never answers."""
    async with tcp_server(answer=False) as url:
        yield url


@pytest.fixture
def closed_port_url() -> str:
    """Base URL of a loopback port nothing listens on."""
    return f"http://{LOOPBACK}:{free_port()}"


Serve = Callable[[Litestar], AbstractAsyncContextManager[str]]


@pytest.fixture
def serve() -> Serve:
    """`async with serve(app) as base_url`: the app served by uvicorn in this event loop."""
    return serving


MakeHeartbeat = Callable[..., Heartbeat]


def _heartbeat(worker_id: str = "worker-1", **fields: object) -> Heartbeat:
    now = now_ms()
    values: dict[str, object] = {
        "id": worker_id,
        "host": "test-host",
        "pid": 4242,
        "version": "0.1.0",
        "queues": ("default",),
        "concurrency": 4,
        "in_hand": 0,
        "running": 0,
        "started_at_ms": now - 60_000,
        "beat_at_ms": now,
        "ttl_ms": 60_000,
        **fields,
    }
    return msgspec.convert(values, Heartbeat)


@pytest.fixture
def make_heartbeat() -> MakeHeartbeat:
    """make_heartbeat(worker_id="worker-1", **fields): a heartbeat beating now, live for a
    minute unless `ttl_ms` says otherwise."""
    return _heartbeat


@pytest.fixture
async def live_worker(redis: Redis) -> Heartbeat:
    """A live worker's heartbeat in the test's Redis: the `worker` check passes."""
    beat = _heartbeat()
    await publish(redis, beat)
    return beat
