"""The composition root: builds the hub, the event source and the HTTP app around them."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar
from litestar.plugins.prometheus import PrometheusConfig
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from notifier.admission import HandshakeBucket
from notifier.auth import TokenVerifier, query_token_auth
from notifier.catchup import CatchUp
from notifier.endpoint import ws_route
from notifier.health import health_routes
from notifier.hub import Hub
from notifier.metrics import NotifierCollector, metrics_route
from notifier.persist import NotificationWriter
from notifier.presence import RedisPresence
from notifier.recovery import RedisHistory
from notifier.settings import NotifierSettings
from notifier.source import RedisEventSource
from shared.connections import RETRY_ON, sentinel_client
from shared.db.session import create_engine, create_sessionmaker
from shared.notifications import NotificationRepository
from shared.recentlogs import RecentLogs
from shared.runtime.listener import SettingsListener, follow_log_level
from shared.runtime.store import RuntimeSettingsStore
from shared.settings import DatabaseSettings, JwtSettings, QueueSettings, RedisSettings


def create_app(
    *,
    redis: RedisSettings,
    jwt: JwtSettings,
    queues: QueueSettings,
    notifier: NotifierSettings,
    database: DatabaseSettings | None,
) -> Litestar:
    """The notifier's ASGI app; its lifespan runs the event source until shutdown.

    With `database`, it also stores users' notifications there; without, it only pushes.
    """
    timeout_s = notifier.redis_timeout_ms / 1000
    # Longer than a blocking read, so only a dead connection times out.
    socket_timeout_s = (notifier.read_block_ms + notifier.redis_timeout_ms) / 1000
    if redis.cluster:
        # Typed as Redis, as in shared.connections. It has no blocking pool: past
        # `redis_max_connections` to one node a command fails at once and its caller retries.
        client = cast(
            Redis,
            RedisCluster.from_url(
                redis.url,
                max_connections=notifier.redis_max_connections,
                protocol=2,
                socket_connect_timeout=timeout_s,
                socket_timeout=socket_timeout_s,
                retry_on_error=list(RETRY_ON),
            ),
        )
    else:
        # A blocking pool: a burst of catch-ups waits for a free connection rather than failing.
        options: dict[str, Any] = {
            "max_connections": notifier.redis_max_connections,
            "timeout": timeout_s,
            "protocol": 2,
            "socket_connect_timeout": timeout_s,
            "socket_timeout": socket_timeout_s,
        }
        if redis.sentinels:
            client = sentinel_client(redis, **options)
        else:
            client = Redis.from_pool(BlockingConnectionPool.from_url(redis.url, **options))
    hub = Hub()
    source = RedisEventSource(client, queues.names, hub, notifier, cluster=redis.cluster)
    history = RedisHistory(client, notifier.catch_up_page_size, notifier.catch_up_max_entries)
    instance = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    presence = RedisPresence(
        client,
        instance,
        ttl_ms=notifier.presence_ttl_ms,
        flush_ms=notifier.presence_flush_ms,
    )
    engine = None if database is None else create_engine(database)
    writer = (
        None
        if engine is None
        else NotificationWriter(
            client,
            NotificationRepository(create_sessionmaker(engine)),
            queues.names,
            notifier,
            consumer=instance,
            cluster=redis.cluster,
        )
    )
    listener = (
        None
        if engine is None
        else SettingsListener(client, RuntimeSettingsStore(create_sessionmaker(engine), client))
    )
    if listener is not None:
        follow_log_level(listener)
    writer_stats = None if writer is None else writer.stats
    handshakes = HandshakeBucket(notifier.admit_rate_per_s, notifier.admit_burst, time.monotonic())
    collector = NotifierCollector(hub, handshakes, source.stats, writer_stats)

    @asynccontextmanager
    async def running(_: Litestar) -> AsyncIterator[None]:
        try:
            async with RecentLogs(client, "notifier").installed(), asyncio.TaskGroup() as tasks:
                loops = [
                    tasks.create_task(source.run(), name="notifier-event-source"),
                    tasks.create_task(presence.run(), name="notifier-presence"),
                ]
                if writer is not None:
                    loops.append(tasks.create_task(writer.run(), name="notifier-writer"))
                if listener is not None:
                    loops.append(tasks.create_task(listener.run(), name="runtime-settings"))
                try:
                    yield
                finally:
                    for loop in loops:
                        loop.cancel()
        finally:
            await client.aclose()
            if engine is not None:
                await engine.dispose()

    prometheus = PrometheusConfig(app_name="notifier", prefix="conduit_notifier_http")
    return Litestar(
        route_handlers=[
            *health_routes(
                client, notifier.redis_timeout_ms / 1000, lambda: source.following, writer_stats
            ),
            metrics_route(collector),
            ws_route(
                hub=hub,
                auth=query_token_auth(jwt),
                tokens=TokenVerifier(jwt),
                catch_up=CatchUp(history, source, queues.names),
                presence=presence,
                handshakes=handshakes,
                settings=notifier,
            ),
        ],
        middleware=[prometheus.middleware],
        lifespan=[running],
        # Logging is the process's (shared.logging); Litestar's default would replace it.
        logging_config=None,
    )
