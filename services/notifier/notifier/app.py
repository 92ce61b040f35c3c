"""The composition root: builds the hub, the event source and the HTTP app around them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from notifier.auth import query_token_auth
from notifier.endpoint import ws_route
from notifier.health import health_routes
from notifier.hub import Hub
from notifier.metrics import NotifierCollector
from notifier.settings import NotifierSettings
from notifier.source import RedisEventSource
from shared.settings import JwtSettings, QueueSettings, RedisSettings


def create_app(
    *,
    redis: RedisSettings,
    jwt: JwtSettings,
    queues: QueueSettings,
    notifier: NotifierSettings,
) -> Litestar:
    """The notifier's ASGI app; its lifespan runs the event source until shutdown."""
    client = Redis.from_url(
        redis.url,
        protocol=2,
        socket_connect_timeout=notifier.redis_timeout_ms / 1000,
        # Longer than a blocking read, so only a dead connection times out.
        socket_timeout=(notifier.read_block_ms + notifier.redis_timeout_ms) / 1000,
    )
    hub = Hub()
    source = RedisEventSource(client, queues.names, hub, notifier)
    collector = NotifierCollector(hub, source.stats)

    @asynccontextmanager
    async def running(_: Litestar) -> AsyncIterator[None]:
        REGISTRY.register(collector)
        try:
            async with asyncio.TaskGroup() as tasks:
                reading = tasks.create_task(source.run(), name="notifier-event-source")
                try:
                    yield
                finally:
                    reading.cancel()
        finally:
            REGISTRY.unregister(collector)
            await client.aclose()

    prometheus = PrometheusConfig(app_name="notifier", prefix="conduit_notifier_http")
    return Litestar(
        route_handlers=[
            *health_routes(client, notifier.redis_timeout_ms / 1000, lambda: source.following),
            PrometheusController,
            ws_route(
                hub,
                query_token_auth(jwt),
                send_timeout_s=notifier.send_timeout_ms / 1000,
                close_timeout_s=notifier.close_timeout_ms / 1000,
            ),
        ],
        middleware=[prometheus.middleware],
        lifespan=[running],
        # Logging is the process's (shared.logging); Litestar's default would replace it.
        logging_config=None,
    )
