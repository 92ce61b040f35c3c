"""`/v1/queues`: every queue's overview for any user; pausing and resuming one, for admins."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_200_OK
from redis.asyncio import Redis

from gateway.auth import Principal, admin_only
from gateway.params import QueueName, known_queue
from shared.clock import now_ms
from shared.queuestats import PauseMark, QueueOverview, overview, pause, read_snapshot, resume
from shared.settings import QueueSettings


async def _overview(redis: Redis, name: str) -> QueueOverview:
    return overview(await read_snapshot(redis, [name]), name)


class QueueController(Controller):
    """What each configured queue holds and did, read from Redis on each request."""

    path = "/v1/queues"
    tags = ("queues",)

    @get(summary="List queues")
    async def list_all(
        self, redis: NamedDependency[Redis], queues: NamedDependency[QueueSettings]
    ) -> list[QueueOverview]:
        """Every configured queue, in configuration order, read at one moment."""
        snapshot = await read_snapshot(redis, queues.names)
        return [overview(snapshot, name) for name in queues.names]

    @get("/{name:str}", summary="Read a queue")
    async def read(
        self,
        name: QueueName,
        redis: NamedDependency[Redis],
        queues: NamedDependency[QueueSettings],
    ) -> QueueOverview:
        """One queue: its counts, its lanes, its last hour's throughput and its pause."""
        known_queue(name, queues)
        return await _overview(redis, name)

    @post("/{name:str}/pause", status_code=HTTP_200_OK, guards=[admin_only], summary="Pause")
    async def pause_queue(
        self,
        request: Request[Principal, Token, Any],
        name: QueueName,
        redis: NamedDependency[Redis],
        queues: NamedDependency[QueueSettings],
    ) -> QueueOverview:
        """Workers start none of its jobs until it is resumed; running ones finish. Pausing a
        paused queue changes nothing: it keeps who paused it first, and since when."""
        known_queue(name, queues)
        await pause(redis, name, PauseMark(by=request.user.sub, at_ms=now_ms()))
        return await _overview(redis, name)

    @post("/{name:str}/resume", status_code=HTTP_200_OK, guards=[admin_only], summary="Resume")
    async def resume_queue(
        self,
        name: QueueName,
        redis: NamedDependency[Redis],
        queues: NamedDependency[QueueSettings],
    ) -> QueueOverview:
        """Workers take its jobs again; resuming a running queue changes nothing."""
        known_queue(name, queues)
        await resume(redis, name)
        return await _overview(redis, name)
