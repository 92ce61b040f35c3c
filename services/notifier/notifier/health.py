"""`/livez` and `/readyz`: the process is up; Redis answers; whether notifications get stored.

PostgreSQL down does not make the notifier unready: it keeps pushing, and the notifications wait
in Redis. `/readyz` then still answers 200, with status `warn` and what is failing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from redis.asyncio import Redis

from notifier.persist import WriterStats


class Status(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A probe answer: `pass` or `fail`, and for a failure which dependency and why."""

    status: str
    redis: str | None = None
    events: str | None = None
    notifications: str | None = None


def health_routes(
    redis: Redis, timeout_s: float, following: Callable[[], bool], writer: WriterStats | None
) -> list[HTTPRouteHandler]:
    """The probe handlers, public and cheap enough to be called every second."""

    @get("/livez", sync_to_thread=False)
    def livez() -> Status:
        """The process serves requests; no dependency is checked."""
        return Status(status="pass")

    @get("/readyz")
    async def readyz() -> Response[Status]:
        """Redis answers a PING within the timeout and the events streams are being followed."""
        try:
            async with asyncio.timeout(timeout_s):
                await redis.ping()
        except Exception as exc:
            # Besides REDIS_FAILURES and timeouts, redis-py's cluster client raises AttributeError
            # when a command meets a node connection that another task is dropping (measured,
            # with every master down). A probe answers 503 for all of them, never 500.
            failed = Status(status="fail", redis=repr(exc))
            return Response(failed, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        if not following():
            failed = Status(status="fail", events="not following the events streams yet")
            return Response(failed, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        if writer is not None and writer.failing is not None:
            failing_s = time.monotonic() - writer.failing_since
            stuck = (
                f"storing fails since {failing_s:.0f}s ({writer.failing}); "
                f"{writer.in_hand} events in hand, later ones wait in Redis"
            )
            return Response(Status(status="warn", notifications=stuck), status_code=HTTP_200_OK)
        return Response(Status(status="pass"), status_code=HTTP_200_OK)

    return [livez, readyz]
