"""Reconnect storms: handshakes admitted at a bounded rate (1013 with a retry hint over it), and a
stopping notifier telling each client when to come back (`reconnect`, then 1012); the typed
client honouring both.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from devstack.ports import LOOPBACK, free_port
from devstack.tokens import TokenFactory
from notifier.admission import HandshakeBucket
from notifier.settings import NotifierSettings
from notifier.wsprotocol import reconnect_after_ms
from shared.client import NotifierClient
from shared.contracts.ws import (
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN,
    EventPush,
    Reconnect,
    ServerMessage,
    Welcome,
    retry_after_ms,
    try_again_reason,
)
from shared.settings import SettingsError, from_env
from tests.notifier.process import NotifierProcesses
from tests.notifier.wire import next_push, publish, queued, receive, ws_url

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]
TIMEOUT_S = 5


@given(
    rate=st.floats(min_value=0.5, max_value=1_000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200),
)
def test_bucket_never_admits_more_than_the_burst_plus_the_rate(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = HandshakeBucket(rate, burst, now=0.0)
    now = 0.0
    for gap in gaps:
        now += gap
        bucket.admit(now)

    assert bucket.admitted <= burst + rate * now + 1e-6
    assert bucket.admitted + bucket.refused == len(gaps)


@given(rate=st.floats(min_value=0.5, max_value=1_000), burst=st.integers(1, 50))
def test_clients_refused_at_once_are_given_successive_slots_at_the_rate(
    rate: float, burst: int
) -> None:
    bucket = HandshakeBucket(rate, burst, now=0.0)
    admitted = [bucket.admit(0.0) for _ in range(burst)]
    hints = [bucket.admit(0.0) for _ in range(10)]

    assert admitted == [0.0] * burst
    assert hints[0] == pytest.approx(1 / rate)
    gaps = [later - earlier for earlier, later in itertools.pairwise(hints)]
    assert gaps == pytest.approx([1 / rate] * 9)


def test_a_refused_client_that_comes_back_at_its_slot_is_admitted() -> None:
    bucket = HandshakeBucket(10, 1, now=100.0)
    assert bucket.admit(100.0) == 0.0
    first, second = bucket.admit(100.0), bucket.admit(100.0)

    assert bucket.admit(100.0 + first) == 0.0
    assert bucket.admit(100.0 + second) == 0.0


def test_reconnect_delays_spread_over_the_whole_window() -> None:
    rng = random.Random(7)
    delays = [reconnect_after_ms(2_000, rng) for _ in range(1_000)]

    assert min(delays) >= 0
    assert max(delays) <= 2_000
    # Spread: every tenth of the window gets some clients.
    assert {delay * 10 // 2_001 for delay in delays} == set(range(10))


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"NOTIFIER_ADMIT_RATE_PER_S": "0"}, id="no rate"),
        pytest.param({"NOTIFIER_ADMIT_BURST": "0"}, id="no burst"),
        pytest.param({"NOTIFIER_RESTART_WINDOW_MS": "-1"}, id="negative window"),
    ],
)
def test_storm_settings_refuse_nonsense(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(environ))):
        from_env(NotifierSettings, environ)


def test_retry_hint_round_trips_through_the_close_reason() -> None:
    assert retry_after_ms(try_again_reason(250)) == 250
    assert retry_after_ms("catch-up failed, try again") is None


async def first_frame(base_url: str, token: str) -> tuple[ClientConnection, ServerMessage]:
    """Connect; the first message, or the close as a ConnectionClosed."""
    client = await connect(ws_url(base_url, token))
    try:
        return client, await receive(client)
    except BaseException:
        await client.close()
        raise


async def test_burst_over_the_rate_is_told_to_retry_at_once_and_the_admitted_work(
    start_notifier: StartNotifier, redis_url: str, redis: Redis, make_token: TokenFactory
) -> None:
    clients, burst = 40, 5
    async with start_notifier(redis_url, admit_rate_per_s=10, admit_burst=burst) as base_url:
        started = time.monotonic()
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(first_frame(base_url, make_token(f"user-{n}")) for n in range(clients)),
                return_exceptions=True,
            ),
            TIMEOUT_S,
        )
        settled_s = time.monotonic() - started
        admitted = [client for client, first in _welcomed(outcomes)]
        refusals = [exc.rcvd for exc in outcomes if isinstance(exc, ConnectionClosed)]
        await publish(redis, queued("role:USER", job_id="to-everyone"))
        pushes = [await next_push(client) for client in admitted]
        async with httpx.AsyncClient(base_url=base_url) as http:
            metrics = (await http.get("/metrics")).text
        for client in admitted:
            await client.close()
        # A refused client that waits as told is admitted.
        assert refusals[0] is not None
        hint = retry_after_ms(refusals[0].reason)
        assert hint is not None
        await asyncio.sleep(hint / 1000)
        again, message = await first_frame(base_url, make_token("user-0"))
        await again.close()

    assert len(admitted) + len(refusals) == clients
    # The burst, and at most what the rate added while the handshakes were being made.
    assert burst <= len(admitted) <= burst + 10 * settled_s + 1
    assert all(refusal is not None and refusal.code == CLOSE_TRY_AGAIN for refusal in refusals)
    hints = sorted(retry_after_ms(refusal.reason) or 0 for refusal in refusals if refusal)
    assert all(hint > 0 for hint in hints)
    # Spread at the rate: the last is told to come back well after the first.
    assert hints[-1] - hints[0] >= 1_000
    assert [push.event.job_id for push in pushes] == ["to-everyone"] * len(admitted)
    assert f"conduit_notifier_handshakes_refused_total {float(len(refusals))}" in metrics
    assert isinstance(message, Welcome)


def _welcomed(
    outcomes: list[tuple[ClientConnection, ServerMessage] | BaseException],
) -> list[tuple[ClientConnection, ServerMessage]]:
    welcomed = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    assert all(isinstance(first, Welcome) for _, first in welcomed)
    return welcomed


async def test_typed_client_refused_over_the_rate_retries_once_after_the_hint(
    start_notifier: StartNotifier, redis_url: str, make_token: TokenFactory
) -> None:
    async with start_notifier(redis_url, admit_rate_per_s=2, admit_burst=1) as base_url:
        url = ws_url(base_url, None)
        async with connect(ws_url(base_url, make_token("first"))) as first:
            assert isinstance(await receive(first), Welcome)
            client = NotifierClient(url, make_token("alice"), backoff_min_s=0.01)
            started = time.monotonic()
            try:
                welcome = await asyncio.wait_for(anext(client.messages()), TIMEOUT_S)
            finally:
                await client.close()
            waited_s = time.monotonic() - started

    assert isinstance(welcome, Welcome)
    # Refused once, told to retry in about half a second, then admitted: no tries in between.
    assert client.connections == 2
    assert waited_s >= 0.45


async def test_typed_client_comes_back_after_the_delay_a_reconnect_asks_for() -> None:
    after_ms = 600
    opened: list[tuple[float, str]] = []

    async def notifier(connection: ServerConnection) -> None:
        """Once: a welcome, an event, `reconnect`, close 1012; then a welcome."""
        assert connection.request is not None
        opened.append((time.monotonic(), connection.request.path))
        await connection.send(msgspec.json.encode(Welcome(sub="a", role="USER", rooms=())))
        if len(opened) == 1:
            push = EventPush(offset="default:5-0", event=queued("user:a"))
            await connection.send(msgspec.json.encode(push))
            await connection.send(msgspec.json.encode(Reconnect(after_ms=after_ms)))
            await connection.close(CLOSE_SERVICE_RESTART, "service restart")
        else:
            await connection.wait_closed()

    port = free_port()
    async with serve(notifier, LOOPBACK, port):
        client = NotifierClient(f"ws://{LOOPBACK}:{port}/ws", "token", backoff_min_s=0.01)
        received: list[ServerMessage] = []
        messages = client.messages()
        try:
            while len(received) < 4:
                received.append(await asyncio.wait_for(anext(messages), TIMEOUT_S))
        finally:
            await client.close()

    assert [type(message) for message in received] == [Welcome, EventPush, Reconnect, Welcome]
    assert client.connections == 2
    (first_at, _), (second_at, second_path) = opened
    assert after_ms / 1000 <= second_at - first_at < after_ms / 1000 + 1
    assert "since=default%3A5-0" in second_path


@pytest.fixture
def notifiers(
    tmp_path: Path, redis_url: str, database_url: str, jwt_secret: str
) -> NotifierProcesses:
    return NotifierProcesses(
        tmp_path, redis_url=redis_url, database_url=database_url, jwt_secret=jwt_secret
    )


@pytest.mark.slow
async def test_sigterm_tells_every_client_when_to_come_back_then_closes_1012(
    notifiers: NotifierProcesses,
    start_notifier: StartNotifier,
    redis_url: str,
    redis: Redis,
    make_token: TokenFactory,
) -> None:
    window_ms, clients = 3_000, 30
    port = free_port()
    base_url = f"http://{LOOPBACK}:{port}"

    typed = NotifierClient(ws_url(base_url, None), make_token("alice"))
    messages = typed.messages()
    notices: list[Reconnect] = []
    closes: list[tuple[int, str]] = []
    try:
        # Startup blocks the loop for a moment; nothing else runs meanwhile.
        with notifiers.started({"NOTIFIER_RESTART_WINDOW_MS": str(window_ms)}, port) as first:
            assert isinstance(await asyncio.wait_for(anext(messages), TIMEOUT_S), Welcome)
            # Seen, so that the typed client comes back with an offset to catch up from.
            await publish(redis, queued("user:alice", job_id="before-restart"))
            assert isinstance(await asyncio.wait_for(anext(messages), TIMEOUT_S), EventPush)
            raw = [await connect(ws_url(base_url, make_token(f"u{n}"))) for n in range(clients)]
            for client in raw:
                assert isinstance(await receive(client), Welcome)
            stopped_at = time.monotonic()
            first.signal(signal.SIGTERM)
            for client in raw:
                notice = await receive(client)
                assert isinstance(notice, Reconnect)
                notices.append(notice)
                with pytest.raises(ConnectionClosed) as closed:
                    await receive(client)
                assert closed.value.rcvd is not None
                closes.append((closed.value.rcvd.code, closed.value.rcvd.reason))
            typed_notice = await asyncio.wait_for(anext(messages), TIMEOUT_S)
            exit_code = await asyncio.to_thread(first.wait, 10)
            exited_s = time.monotonic() - stopped_at
        # Missed while no notifier runs; the typed client catches up on the next one.
        await publish(redis, queued("user:alice", job_id="while-restarting"))
        async with start_notifier(redis_url, port=port):
            welcome = await asyncio.wait_for(anext(messages), 2 * TIMEOUT_S)
            recovered = await asyncio.wait_for(anext(messages), TIMEOUT_S)
    finally:
        await typed.close()

    delays = [notice.after_ms for notice in notices]
    assert all(0 <= delay <= window_ms for delay in delays)
    assert max(delays) - min(delays) >= window_ms / 3
    assert closes == [(CLOSE_SERVICE_RESTART, "service restart")] * clients
    assert isinstance(typed_notice, Reconnect)
    assert exit_code == 0
    assert exited_s < 5
    assert isinstance(welcome, Welcome)
    assert isinstance(recovered, EventPush)
    assert (recovered.event.job_id, recovered.recovered) == ("while-restarting", True)
