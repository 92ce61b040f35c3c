"""The `/ws` endpoint: joins a client to its rooms, catches it up, then relays live frames."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.handlers import WebsocketRouteHandler
from litestar.middleware import DefineMiddleware

from notifier.admission import HandshakeBucket, admission
from notifier.auth import Identity, TokenVerifier, first_message_identity
from notifier.catchup import CatchUp
from notifier.connection import SocketConnection
from notifier.coverage import Coverage
from notifier.hub import Hub
from notifier.origin import origin_check
from notifier.presence import RedisPresence
from notifier.session import Session
from notifier.settings import NotifierSettings
from shared.contracts.codec import encoder
from shared.contracts.ws import (
    CLOSE_BAD_REQUEST,
    CLOSE_REASON_MAX_BYTES,
    CLOSE_UNAUTHORIZED,
    OffsetError,
    Welcome,
)
from shared.streams import role_room, user_room

logger = logging.getLogger(__name__)

SINCE_PARAMETER = "since"


def ws_route(
    *,
    hub: Hub,
    auth: DefineMiddleware,
    tokens: TokenVerifier,
    catch_up: CatchUp,
    presence: RedisPresence,
    handshakes: HandshakeBucket,
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
            since = catch_up.since(socket.query_params.get(SINCE_PARAMETER))
        except OffsetError as exc:
            await _close(socket, CLOSE_BAD_REQUEST, f"bad since: {exc}", close_timeout_s)
            return
        welcome = Welcome(sub=identity.sub, role=identity.role, rooms=rooms)
        if not await connection.send(encoder.encode(welcome).decode()):
            return
        # Joined with no suspension after the welcome went out (holding waits for nothing: no
        # push reached the connection before it joins): every event published after the client
        # reads its welcome reaches it, held back while the history is sent first.
        if since:
            await connection.hold_live_events()
        live = catch_up.live()
        hub.join(connection, rooms)
        member = presence.member(identity.sub)
        presence.enter(member, rooms)
        had = Coverage()
        try:
            async with connection.lifetime():
                if await catch_up.send_missed(connection, since, frozenset(rooms), live, had):
                    session = Session(
                        connection,
                        hub,
                        tokens,
                        presence,
                        catch_up=catch_up,
                        had=had,
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
