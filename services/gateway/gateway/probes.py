"""`/livez` and `/readyz`: the gateway's own liveness and readiness, public."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from redis.asyncio import Redis

from shared.connections import REDIS_FAILURES

READY_TIMEOUT_S = 2.0


@get("/livez", summary="Liveness", include_in_schema=False, sync_to_thread=False)
def livez() -> dict[str, str]:
    """The process serves; no dependency is consulted."""
    return {"status": "pass"}


@get("/readyz", summary="Readiness", include_in_schema=False)
async def readyz(redis: NamedDependency[Redis]) -> Response[dict[str, str]]:
    """Ready when Redis answers: without it no job can be accepted."""
    try:
        await redis.ping()
    except REDIS_FAILURES as exc:
        return Response({"status": "fail", "redis": str(exc)}, status_code=503)
    return Response({"status": "pass"})
