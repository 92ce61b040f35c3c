"""`/v1/system`: what admins read about the running system: the services' recent log lines."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from redis.asyncio import Redis

from gateway.auth import admin_only
from shared.recentlogs import LogLine, read_recent_logs

Service = Literal["gateway", "worker", "notifier", "health"]
SERVICES: tuple[Service, ...] = ("gateway", "worker", "notifier", "health")
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SystemController(Controller):
    """Admins only."""

    path = "/v1/system"
    tags = ("system",)
    guards = (admin_only,)

    @get("/logs", summary="Read recent log lines")
    async def logs(
        self,
        *,
        redis: NamedDependency[Redis],
        level: Annotated[Level, QueryParameter(description="This level and above")] = "DEBUG",
        source: Annotated[Service | None, QueryParameter(description="One service")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
    ) -> list[LogLine]:
        """The newest lines of every service (the last 1,000 of each are kept), newest first."""
        services = (source,) if source is not None else SERVICES
        return await read_recent_logs(redis, services, min_level=level, limit=limit)
