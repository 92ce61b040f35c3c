"""The gateway's composition root: settings, Redis, auth, routes, metrics and errors."""

from __future__ import annotations

import msgspec
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import REGISTRY

from gateway.auth import create_jwt_auth
from gateway.jobs import JobController
from gateway.metrics import EnqueueCollector
from gateway.probes import livez, readyz
from gateway.problems import EXCEPTION_HANDLERS, problem_details_plugin
from gateway.repeatables import RepeatableController
from gateway.subscriptions import subscription_routes
from shared.connections import redis_client
from shared.db.session import create_engine, create_sessionmaker
from shared.jobstore import JobStore, StoreSettings
from shared.repeatables import RepeatableStore
from shared.settings import DatabaseSettings, JwtSettings, QueueSettings, RedisSettings

MAX_BODY_BYTES = 1_048_576


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the gateway reads from the environment."""

    redis: RedisSettings
    database: DatabaseSettings
    queues: QueueSettings
    jwt: JwtSettings
    jobs: StoreSettings = StoreSettings()


class MetricsController(PrometheusController):
    """`/metrics` in the Prometheus text format, public."""

    path = "/metrics"


def create_app(settings: Settings) -> Litestar:
    """Build the gateway; Redis and PostgreSQL connect lazily and close at shutdown."""
    redis = redis_client(settings.redis)
    engine = create_engine(settings.database)
    sessions = create_sessionmaker(engine)
    store = JobStore(redis, settings.jobs)
    repeatables = RepeatableStore(redis)
    enqueued = EnqueueCollector()

    def register_metrics() -> None:
        REGISTRY.register(enqueued)

    async def shut_down() -> None:
        REGISTRY.unregister(enqueued)
        await redis.aclose()
        await engine.dispose()

    return Litestar(
        route_handlers=[
            JobController,
            RepeatableController,
            *subscription_routes(settings.jwt),
            livez,
            readyz,
            MetricsController,
        ],
        dependencies={
            "redis": Provide(lambda: redis, sync_to_thread=False),
            "sessions": Provide(lambda: sessions, sync_to_thread=False),
            "store": Provide(lambda: store, sync_to_thread=False),
            "repeatables": Provide(lambda: repeatables, sync_to_thread=False),
            "queues": Provide(lambda: settings.queues, sync_to_thread=False),
            "enqueued": Provide(lambda: enqueued, sync_to_thread=False),
        },
        on_app_init=[create_jwt_auth(settings.jwt).on_app_init],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            # Label requests by route template, not URL: one series per route, not per job id.
            PrometheusConfig(
                app_name="gateway", prefix="conduit_gateway", group_path=True
            ).middleware
        ],
        openapi_config=OpenAPIConfig(title="Conduit gateway", version="1", path="/schema"),
        on_startup=[register_metrics],
        on_shutdown=[shut_down],
        # Logging is configured once per process, as JSON, by shared.logging.
        logging_config=None,
        request_max_body_size=MAX_BODY_BYTES,
    )
