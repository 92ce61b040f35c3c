"""Tiny real HTTP peers for the health service's probes, and the app served by uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from litestar import Litestar

from devstack.ports import LOOPBACK, free_port
from tests.serving import serving

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
