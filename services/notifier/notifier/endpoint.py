"""The `/ws` endpoint: joins a client to its rooms, catches it up, then relays live frames."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.handlers import WebsocketRouteHandler
from litestar.middleware import DefineMiddleware
from redis.exceptions import RedisError

from notifier.admission import HandshakeBucket, admission
from notifier.auth import Identity, TokenVerifier, first_message_identity
from notifier.connection import SocketConnection
from notifier.frames import EventFrames
from notifier.hub import Hub
from notifier.origin import origin_check
from notifier.presence import RedisPresence
from notifier.recovery import HistoryGoneError, RedisHistory
from notifier.session import Session
from notifier.settings import NotifierSettings
from shared.contracts.codec import encoder
from shared.contracts.ws import (
    CLOSE_BAD_REQUEST,
    CLOSE_REASON_MAX_BYTES,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    OffsetError,
    Resync,
    Welcome,
    event_offset,
    parse_since,
)
from shared.streams import role_room, user_room

logger = logging.getLogger(__name__)

SINCE_PARAMETER = "since"


def ws_route(
    *,
    hub: Hub,
    auth: DefineMiddleware,
    tokens: TokenVerifier,
    history: RedisHistory,
    presence: RedisPresence,
    handshakes: HandshakeBucket,
    queues: Sequence[str],
    settings: NotifierSettings,
) -> WebsocketRouteHandler:
    """The `/ws` route handler, bound to its hub and the events history."""
    close_timeout_s = settings.close_timeout_ms / 1000

    # Cheapest refusal first: over the handshake rate, nothing else is looked at. The origin is
    # checked before the token: a page on a foreign origin learns nothing more.
    @websocket(
        "/ws", middleware=[admission(handshakes), origin_check(settings.allowed_origins), auth]
    )
    async def notifications(socket: WebSocket[Identity | None, Any, Any]) -> None:
        """Push the events of the client's rooms until it leaves."""
        await socket.accept()
        identity = socket.user
        if identity is None:
            try:
                identity = await first_message_identity(
                    socket,
                    tokens,
                    timeout_s=settings.auth_timeout_ms / 1000,
                    max_bytes=settings.max_message_bytes,
                )
            except NotAuthorizedException as exc:
                logger.info("websocket refused: %s", exc.detail)
                reason = f"unauthorized: {exc.detail}"
                await _close(socket, CLOSE_UNAUTHORIZED, reason, close_timeout_s)
                return
            except WebSocketDisconnect:
                return
        connection = SocketConnection(
            socket,
            identity,
            max_message_bytes=settings.max_message_bytes,
            max_buffer_messages=settings.send_buffer_messages,
            max_buffer_bytes=settings.send_buffer_bytes,
        )
        rooms = (user_room(identity.sub), role_room(identity.role))
        try:
            since = _since(socket.query_params.get(SINCE_PARAMETER), queues)
        except OffsetError as exc:
            await _close(socket, CLOSE_BAD_REQUEST, f"bad since: {exc}", close_timeout_s)
            return
        welcome = Welcome(sub=identity.sub, role=identity.role, rooms=rooms)
        if not await connection.send(encoder.encode(welcome).decode()):
            return
        if since:
            connection.hold_live_events()
        # Joined with no await after the welcome went out: every event published after the
        # client reads its welcome reaches it (held back while the history is sent first).
        hub.join(connection, rooms)
        member = presence.member(identity.sub)
        presence.enter(member, rooms)
        try:
            async with connection.lifetime():
                if not since or await _catch_up(connection, history, since, frozenset(rooms)):
                    session = Session(
                        connection,
                        hub,
                        tokens,
                        presence,
                        member=member,
                        warn_s=settings.token_warn_s,
                        max_entity_rooms=settings.max_entity_rooms,
                    )
                    await connection.wait_until_done(session)
        finally:
            presence.leave(member, hub.rooms_of(connection))
            hub.leave(connection)
        if connection.close_with is not None:
            code, reason = connection.close_with
            logger.warning("closing client %s: %s", identity.sub, reason)
            await _close(socket, code, reason, close_timeout_s)

    return notifications


def _since(raw: str | None, queues: Sequence[str]) -> dict[str, str]:
    if not raw:
        return {}
    since = parse_since(raw)
    unknown = sorted(set(since) - set(queues))
    if unknown:
        raise OffsetError(f"unknown queue {unknown[0][:64]!r}")
    return since


async def _catch_up(
    connection: SocketConnection,
    history: RedisHistory,
    since: Mapping[str, str],
    rooms: frozenset[str],
) -> bool:
    """Send what the client missed in each queue, then its held live events; False if it ends."""
    recovered_up_to: dict[str, str] = {}
    for queue, entry_id in since.items():
        try:
            missed = await history.missed(queue, entry_id, rooms)
        except HistoryGoneError as exc:
            resync = Resync(queue=queue, reason=exc.reason)
            if not await connection.send(encoder.encode(resync).decode()):
                return False
            continue
        except (RedisError, OSError) as exc:
            logger.warning("catch-up of %s failed: %r", connection.identity.sub, exc)
            connection.close_with = (CLOSE_TRY_AGAIN, "catch-up failed, try again")
            return False
        for missed_id, event in missed:
            frames = EventFrames(event, event_offset(queue, missed_id), recovered=True)
            frame = frames.for_admin() if connection.sees_error_detail else frames.for_user()
            if not await connection.send(frame):
                return False
        if missed:
            recovered_up_to[queue] = missed[-1][0]
    return await connection.release_live_events(recovered_up_to)


async def _close(
    socket: WebSocket[Any, Any, Any], code: int, reason: str, timeout_s: float
) -> None:
    reason = reason.encode()[:CLOSE_REASON_MAX_BYTES].decode(errors="ignore")
    try:
        async with asyncio.timeout(timeout_s):
            await socket.close(code=code, reason=reason)
    except (TimeoutError, WebSocketDisconnect, OSError, RuntimeError) as exc:
        # A slow client's close frame waits behind a full buffer; the server drops the
        # transport when the handler returns. (uvicorn raises RuntimeError when it has closed
        # the connection itself, a peer that stopped answering pings, and not yet said so.)
        logger.debug("close frame not sent: %r", exc)
