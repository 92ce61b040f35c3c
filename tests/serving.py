"""An ASGI app served by uvicorn in the test's own event loop, as its service serves it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from devstack.ports import LOOPBACK


@asynccontextmanager
async def serving(app: Any, port: int = 0, **config: Any) -> AsyncIterator[str]:
    """`async with serving(app) as base_url`: on a loopback port (0: any free one).

    `config` goes to uvicorn (`ws=` a WebSocket protocol, say).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # So that a test can serve again on the port of a server it just stopped.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", ws_per_message_deflate=False, **config)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
