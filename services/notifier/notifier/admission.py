"""Admitting WebSocket handshakes at a bounded rate, so that a reconnect storm cannot swamp one
notifier: over the rate a client is closed at once with 1013 and told when to come back.

The bucket is this process's alone: each notifier protects its own CPU, whatever the others do.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from litestar.connection import WebSocket
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware

from shared.contracts.ws import CLOSE_TRY_AGAIN, try_again_reason

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)


class HandshakeBucket:
    """A token bucket of handshakes: `rate_per_s` on average, `burst` at once. Pure: no clock.

    A refused client is given the next free slot after those already given out, one per
    `1 / rate_per_s`, so that refused clients come back spread at the rate instead of together.
    """

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self._rate_per_s = rate_per_s
        self._interval_s = 1 / rate_per_s
        self._burst = burst
        self._tokens = float(burst)
        self._updated_at = now
        # When the last slot given to a refused client comes.
        self._slots_until = now
        self.admitted = 0
        self.refused = 0

    def admit(self, now: float) -> float:
        """0 if a handshake may go ahead at `now`; else the seconds after which to try again."""
        elapsed_s = max(0.0, now - self._updated_at)
        self._tokens = min(float(self._burst), self._tokens + elapsed_s * self._rate_per_s)
        self._updated_at = max(now, self._updated_at)
        # Within float rounding of a whole token: a client back exactly at its slot gets in.
        if self._tokens >= 1 - 1e-9:
            self._tokens -= 1
            self.admitted += 1
            return 0.0
        self.refused += 1
        next_token_at = now + (1 - self._tokens) * self._interval_s
        self._slots_until = max(next_token_at, self._slots_until + self._interval_s)
        return self._slots_until - now


class AdmissionMiddleware:
    """Accepts, then closes with 1013 and a retry hint, a WebSocket handshake over the rate."""

    def __init__(self, app: ASGIApp, bucket: HandshakeBucket) -> None:
        self._app = app
        self._bucket = bucket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a WebSocket over the rate; pass everything else on."""
        if scope["type"] == ScopeType.WEBSOCKET:
            wait_s = self._bucket.admit(time.monotonic())
            if wait_s > 0:
                after_ms = math.ceil(wait_s * 1000)
                logger.debug("websocket refused: over the handshake rate, retry in %d ms", after_ms)
                socket: WebSocket[Any, Any, Any] = WebSocket(scope, receive, send)
                # Accepted first: a browser cannot read why a handshake was refused.
                await socket.accept()
                await socket.close(code=CLOSE_TRY_AGAIN, reason=try_again_reason(after_ms))
                return
        await self._app(scope, receive, send)


def admission(bucket: HandshakeBucket) -> DefineMiddleware:
    """The middleware that admits WebSocket handshakes as `bucket` allows."""
    return DefineMiddleware(AdmissionMiddleware, bucket=bucket)
