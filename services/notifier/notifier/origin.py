"""The Origin check of a WebSocket handshake, against cross-site WebSocket hijacking.

Browsers always send the page's origin on a WebSocket handshake and let any page open one, so a
browser origin must be on the allow-list. Other clients (backends, the Python client) send no
Origin and are let through; their token is their only credential either way.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from litestar.connection import WebSocket
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware

from shared.contracts.ws import CLOSE_FORBIDDEN

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)


def origin_allowed(origin: str | None, allowed: Collection[str]) -> bool:
    """Whether a handshake with this Origin header (None: none sent) may go on."""
    return origin is None or origin.lower().rstrip("/") in allowed


class OriginCheckMiddleware:
    """Accepts, then closes with 4403, a WebSocket whose Origin is not allowed."""

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self._app = app
        self._allowed = frozenset(origin.lower().rstrip("/") for origin in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a WebSocket from an origin not on the list; pass everything else on."""
        if scope["type"] == ScopeType.WEBSOCKET:
            origins = [value for name, value in scope["headers"] if name == b"origin"]
            origin = origins[0].decode("latin-1") if origins else None
            if not origin_allowed(origin, self._allowed):
                logger.info("websocket refused: origin %r not allowed", origin)
                socket: WebSocket[Any, Any, Any] = WebSocket(scope, receive, send)
                # Accepted first: a browser cannot read why a handshake was refused.
                await socket.accept()
                await socket.close(code=CLOSE_FORBIDDEN, reason="forbidden: origin not allowed")
                return
        await self._app(scope, receive, send)


def origin_check(allowed: Collection[str]) -> DefineMiddleware:
    """The middleware that allows these origins (`scheme://host[:port]`) and Origin-less clients."""
    return DefineMiddleware(OriginCheckMiddleware, allowed=allowed)
