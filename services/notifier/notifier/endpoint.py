"""The `/ws` endpoint: joins a client to its rooms and relays the hub's frames to its socket."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers import WebsocketRouteHandler
from litestar.middleware import DefineMiddleware

from notifier.auth import Identity
from notifier.hub import Hub
from shared.contracts.codec import encoder
from shared.contracts.ws import CLOSE_SLOW_CONSUMER, Welcome
from shared.streams import role_room, user_room

logger = logging.getLogger(__name__)


class SocketConnection:
    """One authenticated client socket, as a hub `Connection`.

    A push writes straight to the socket. Under uvicorn a send returns at once while the
    transport's write buffer is below its high-water mark and waits once it is above, so the
    transport buffer is the per-client bound: a push that would wait longer than `send_timeout_s`
    marks the client slow, and its own handler closes it. No queue and no task per client.
    """

    __slots__ = ("_closing", "_send_timeout_s", "_socket", "identity", "slow")

    def __init__(self, socket: WebSocket[Any, Any, Any], identity: Identity, send_timeout_s: float):
        self._socket = socket
        self._send_timeout_s = send_timeout_s
        self._closing: asyncio.Timeout | None = None
        self.identity = identity
        self.slow = False

    @property
    def sees_error_detail(self) -> bool:
        """Admins see an error's detail."""
        return self.identity.role == "ADMIN"

    async def push(self, frame: str) -> bool:
        """Send one frame, or report that this client is gone or too slow to keep."""
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await self._socket.send_data(frame)
        except TimeoutError:
            self.slow = True
            self._stop_waiting()
            return False
        except (WebSocketDisconnect, OSError) as exc:
            logger.debug("push to %s failed, client gone: %r", self.identity.sub, exc)
            return False
        return True

    async def wait_until_done(self) -> None:
        """Drain what the client sends until it disconnects or is found slow."""
        try:
            async with asyncio.timeout(None) as closing:
                self._closing = closing
                async for _ in self._socket.iter_data("text"):
                    # Clients have nothing to say yet; reading keeps disconnects noticed.
                    pass
        except TimeoutError:
            if not self.slow:
                raise
        finally:
            self._closing = None

    def _stop_waiting(self) -> None:
        # Expiring the scope that `wait_until_done` sits in wakes the client's own task, which
        # then does the closing; the hub never waits for it.
        if self._closing is not None:
            self._closing.reschedule(-1)


def ws_route(
    hub: Hub, auth: DefineMiddleware, send_timeout_s: float, close_timeout_s: float
) -> WebsocketRouteHandler:
    """The `/ws` route handler, bound to its hub."""

    @websocket("/ws", middleware=[auth])
    async def notifications(socket: WebSocket[Identity, Any, Any]) -> None:
        """Push the events of the client's rooms until it leaves."""
        identity = socket.user
        connection = SocketConnection(socket, identity, send_timeout_s)
        rooms = (user_room(identity.sub), role_room(identity.role))
        await socket.accept()
        await socket.send_data(
            encoder.encode(Welcome(sub=identity.sub, role=identity.role, rooms=rooms)).decode()
        )
        # Joined with no await after the welcome went out: every event published after the
        # client reads its welcome reaches it.
        hub.join(connection, rooms)
        try:
            await connection.wait_until_done()
        finally:
            hub.leave(connection)
        if connection.slow:
            logger.warning("dropping slow client %s", identity.sub)
            await _close_slow(socket, close_timeout_s)

    return notifications


async def _close_slow(socket: WebSocket[Any, Any, Any], timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await socket.close(code=CLOSE_SLOW_CONSUMER, reason="slow consumer")
    except (TimeoutError, WebSocketDisconnect, OSError) as exc:
        # The close frame waits behind a full buffer; the server drops the transport on return.
        logger.debug("close of slow client not sent: %r", exc)
