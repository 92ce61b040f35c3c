"""The notifier served by uvicorn in the test's event loop, and WebSocket clients of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar
from websockets.asyncio.client import ClientConnection, connect

from devstack.tokens import TokenFactory
from notifier.app import create_app
from notifier.settings import NotifierSettings
from notifier.wsprotocol import notifier_protocol
from shared.contracts.ws import Welcome
from shared.settings import DatabaseSettings, JwtSettings, QueueSettings, RedisSettings
from tests.notifier.wire import receive, ws_url
from tests.serving import serving

QUEUES = ("default", "emails")
# The WebSocket protocol `python -m notifier` runs, whose direct frame writes pushes take. The
# `notifier_url` notifier runs it; those of `start_notifier` run uvicorn's default, where pushes
# go through the ASGI send, and a restart closes clients without a `reconnect` first.
PROTOCOL = notifier_protocol(NotifierSettings().restart_window_ms)

Subscribe = Callable[..., AbstractAsyncContextManager[ClientConnection]]
StartNotifier = Callable[..., AbstractAsyncContextManager[str]]


def notifier_app(
    redis_url: str, jwt_secret: str, database_url: str | None = None, **limits: Any
) -> Litestar:
    """The notifier for the test Redis, following QUEUES, retrying quickly.

    With `database_url` it stores notifications there; without, it only pushes.
    """
    return create_app(
        redis=RedisSettings(url=redis_url),
        jwt=JwtSettings(secret=jwt_secret),
        queues=QueueSettings(names=QUEUES),
        notifier=NotifierSettings(
            **{"read_block_ms": 1_000, "retry_min_ms": 50, "retry_max_ms": 300, **limits}
        ),
        database=None if database_url is None else DatabaseSettings(url=database_url),
    )


async def wait_ready(base_url: str, timeout_s: float = 10) -> None:
    """Return once `/readyz` says 200: the notifier follows the events streams."""
    async with httpx.AsyncClient(base_url=base_url) as client, asyncio.timeout(timeout_s):
        while (await client.get("/readyz")).status_code != 200:  # noqa: ASYNC110 - polls HTTP
            await asyncio.sleep(0.02)


@pytest.fixture
def start_notifier(jwt_secret: str) -> StartNotifier:
    """`async with start_notifier(redis_url, ready=True, database_url=None, port=0, **limits)`.

    Yields its base URL: with `ready`, once `/readyz` says so; otherwise as soon as it listens.
    """

    @asynccontextmanager
    async def started(
        redis_url: str,
        *,
        ready: bool = True,
        database_url: str | None = None,
        port: int = 0,
        **limits: Any,
    ) -> AsyncIterator[str]:
        app = notifier_app(redis_url, jwt_secret, database_url, **limits)
        async with serving(app, port) as base_url:
            if ready:
                await wait_ready(base_url)
            yield base_url

    return started


@pytest.fixture
async def notifier_url(redis_url: str, jwt_secret: str) -> AsyncIterator[str]:
    """Base URL of a ready notifier (http://host:port)."""
    async with serving(notifier_app(redis_url, jwt_secret), ws=PROTOCOL) as base_url:
        await wait_ready(base_url)
        yield base_url


@pytest.fixture
def subscribe(notifier_url: str, make_token: TokenFactory) -> Subscribe:
    """`async with subscribe(sub, role="USER") as ws`: a client past its welcome."""

    @asynccontextmanager
    async def subscribed(sub: str, role: str = "USER") -> AsyncIterator[ClientConnection]:
        async with connect(ws_url(notifier_url, make_token(sub, role))) as client:
            welcome = await receive(client)
            assert isinstance(welcome, Welcome)
            yield client

    return subscribed
