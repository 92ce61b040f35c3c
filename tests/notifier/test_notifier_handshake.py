"""Handshake hardening: the Origin allow-list, and tokens that run out on an open socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import msgspec
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.typing import Origin

from devstack.tokens import TokenFactory
from notifier.origin import origin_allowed
from shared.contracts.ws import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    Error,
    Refresh,
    TokenExpiring,
    TokenRefreshed,
    Welcome,
)
from tests.notifier.wire import close_code, next_push, publish, queued, receive, ws_url

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]

APP = "https://app.example"


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        pytest.param(None, (), True, id="no origin, empty list"),
        pytest.param(APP, (), False, id="browser origin, empty list"),
        pytest.param(APP, (APP,), True, id="listed"),
        pytest.param("https://APP.example", (APP,), True, id="case-insensitive host"),
        pytest.param("https://app.example:8443", (APP,), False, id="another port"),
        pytest.param("http://app.example", (APP,), False, id="another scheme"),
        pytest.param("https://evil.example", (APP,), False, id="another host"),
    ],
)
def test_origin_allowed_only_when_absent_or_listed(
    origin: str | None, allowed: tuple[str, ...], expected: bool
) -> None:
    assert origin_allowed(origin, allowed) is expected


async def test_browser_origin_not_listed_is_closed_with_4403_and_a_listed_one_is_welcome(
    start_notifier: StartNotifier, redis_url: str, make_token: TokenFactory
) -> None:
    token = make_token("alice")
    async with start_notifier(redis_url, allowed_origins=(APP,)) as base_url:
        async with connect(ws_url(base_url, token), origin=Origin("https://evil.example")) as evil:
            refused = await close_code(evil)
        async with connect(ws_url(base_url, token), origin=Origin(APP)) as app:
            listed = await receive(app)
        async with connect(ws_url(base_url, token)) as backend:
            without_origin = await receive(backend)

    assert refused == (CLOSE_FORBIDDEN, "forbidden: origin not allowed")
    assert isinstance(listed, Welcome)
    assert isinstance(without_origin, Welcome)


async def test_origin_is_refused_even_before_a_bad_token(
    notifier_url: str,
) -> None:
    async with connect(ws_url(notifier_url, "garbage"), origin=Origin(APP)) as client:
        code, _ = await close_code(client)

    assert code == CLOSE_FORBIDDEN


async def test_expiring_token_is_warned_of_then_closed_with_4401(
    start_notifier: StartNotifier, redis_url: str, make_token: TokenFactory
) -> None:
    async with (
        start_notifier(redis_url, token_warn_s=2) as base_url,
        connect(ws_url(base_url, make_token("alice", ttl_s=3))) as client,
    ):
        await receive(client)
        warning = await receive(client)
        closed = await close_code(client)

    assert isinstance(warning, TokenExpiring)
    assert 0 < warning.expires_in_s <= 2
    assert closed == (CLOSE_UNAUTHORIZED, "unauthorized: token expired")


async def test_refreshed_token_keeps_the_connection_past_the_old_expiry(
    start_notifier: StartNotifier, redis_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    old_expiry = time.time() + 3
    async with (
        start_notifier(redis_url, token_warn_s=2) as base_url,
        connect(ws_url(base_url, make_token("alice", ttl_s=3))) as client,
    ):
        await receive(client)
        assert isinstance(await receive(client), TokenExpiring)
        await client.send(msgspec.json.encode(Refresh(token=make_token("alice"))))
        refreshed = await receive(client)
        await asyncio.sleep(max(0.0, old_expiry - time.time()) + 0.3)
        await publish(redis, queued("user:alice", job_id="after-old-expiry"))
        push = await next_push(client)

    assert isinstance(refreshed, TokenRefreshed)
    assert refreshed.expires_in_s > 3_000
    assert push.event.job_id == "after-old-expiry"


@pytest.mark.parametrize(
    "claims",
    [pytest.param(("bob", "USER"), id="another user"), pytest.param(("alice", "ADMIN"), id="role")],
)
async def test_refresh_for_another_user_or_role_is_refused_and_the_old_expiry_holds(
    start_notifier: StartNotifier,
    redis_url: str,
    make_token: TokenFactory,
    claims: tuple[str, str],
) -> None:
    async with (
        start_notifier(redis_url, token_warn_s=1) as base_url,
        connect(ws_url(base_url, make_token("alice", ttl_s=2))) as client,
    ):
        await receive(client)
        await client.send(msgspec.json.encode(Refresh(token=make_token(*claims))))
        answer = await receive(client)
        code, _ = await close_code(client)

    assert isinstance(answer, Error)
    assert "another user or role" in answer.reason
    assert code == CLOSE_UNAUTHORIZED


async def test_invalid_refresh_token_and_unknown_messages_get_an_error(
    subscribe: Callable[..., AbstractAsyncContextManager[object]],
    notifier_url: str,
    make_token: TokenFactory,
) -> None:
    async with connect(ws_url(notifier_url, make_token("alice"))) as client:
        await receive(client)
        await client.send(msgspec.json.encode(Refresh(token="not-a-jwt")))
        refused = await receive(client)
        await client.send('{"type":"dance"}')
        unknown = await receive(client)

    assert isinstance(refused, Error)
    assert refused.reason.startswith("refresh refused")
    assert isinstance(unknown, Error)
    assert unknown.reason.startswith("bad message")
