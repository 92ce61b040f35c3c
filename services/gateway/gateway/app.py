"""The gateway's composition root: settings, Redis, auth, routes, metrics and errors."""

from __future__ import annotations

import msgspec
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import REGISTRY

from gateway.auth import PUBLIC_PATHS, create_jwt_auth
from gateway.console.routes import console_routes
from gateway.console.settings import ConsoleSettings
from gateway.cors import cors_config
from gateway.deadletters import DeadLetterController
from gateway.jobs import JobController, submit_batch
from gateway.metrics import EnqueueCollector, request_metrics
from gateway.notifications import NotificationController
from gateway.openapi import ProblemDocs
from gateway.probes import livez, readyz
from gateway.problems import EXCEPTION_HANDLERS, problem_details_plugin
from gateway.queues import QueueController
from gateway.ratelimit import JobRateLimiter
from gateway.repeatables import RepeatableController
from gateway.runtime_settings import RuntimeSettingsController
from gateway.settings import GatewaySettings
from gateway.subscriptions import EntityKindPolicy, subscription_routes
from gateway.system import SystemController
from shared.connections import redis_client
from shared.db.session import create_engine, create_sessionmaker
from shared.deadletters import DeadLetters
from shared.jobstore import JobStore, StoreSettings
from shared.notifications import NotificationRepository
from shared.recentlogs import RecentLogs
from shared.repeatables import RepeatableStore
from shared.runtime.catalog import JOB_RATE_PER_USER, JobRate
from shared.runtime.listener import SettingsListener, follow_log_level
from shared.runtime.store import RuntimeSettingsStore
from shared.settings import DatabaseSettings, JwtSettings, QueueSettings, RedisSettings


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the gateway reads from the environment."""

    redis: RedisSettings
    database: DatabaseSettings
    queues: QueueSettings
    jwt: JwtSettings
    jobs: StoreSettings = StoreSettings()
    gateway: GatewaySettings = GatewaySettings()
    console: ConsoleSettings = ConsoleSettings()


class MetricsController(PrometheusController):
    """`/metrics` in the Prometheus text format, public; for scrapers, not in the API's schema."""

    path = "/metrics"
    include_in_schema = False


def _count_every_request(app_config: AppConfig) -> AppConfig:
    app_config.middleware.insert(0, request_metrics().middleware)
    return app_config


def create_app(settings: Settings) -> Litestar:
    """Build the gateway; Redis and PostgreSQL connect lazily and close at shutdown."""
    redis = redis_client(settings.redis)
    engine = create_engine(settings.database)
    sessions = create_sessionmaker(engine)
    store = JobStore(redis, settings.jobs)
    repeatables = RepeatableStore(redis)
    dead_letters = DeadLetters(redis, store)
    # Who may watch an entity's room, and so tag a job with that entity.
    room_policy = EntityKindPolicy()
    enqueued = EnqueueCollector()
    job_rate = JobRateLimiter(redis, settings.gateway.job_rate_limit)
    runtime_settings = RuntimeSettingsStore(sessions, redis)
    settings_listener = SettingsListener(redis, runtime_settings)
    follow_log_level(settings_listener)
    settings_listener.on(
        JOB_RATE_PER_USER,
        lambda rate: job_rate.use(None if rate is None else rate.limit()),
        start=lambda: JobRate.of(settings.gateway.job_rate_limit),
    )

    def register_metrics() -> None:
        REGISTRY.register(enqueued)

    async def shut_down() -> None:
        REGISTRY.unregister(enqueued)
        await redis.aclose()
        await engine.dispose()

    return Litestar(
        route_handlers=[
            JobController,
            submit_batch,
            DeadLetterController,
            RepeatableController,
            QueueController,
            RuntimeSettingsController,
            NotificationController,
            SystemController,
            *subscription_routes(settings.jwt, room_policy),
            livez,
            readyz,
            MetricsController,
            *console_routes(settings.console, settings.jwt),
        ],
        dependencies={
            "redis": Provide(lambda: redis, sync_to_thread=False),
            "sessions": Provide(lambda: sessions, sync_to_thread=False),
            "store": Provide(lambda: store, sync_to_thread=False),
            "repeatables": Provide(lambda: repeatables, sync_to_thread=False),
            "dead_letters": Provide(lambda: dead_letters, sync_to_thread=False),
            "room_policy": Provide(lambda: room_policy, sync_to_thread=False),
            "notifications": Provide(
                lambda: NotificationRepository(sessions), sync_to_thread=False
            ),
            "queues": Provide(lambda: settings.queues, sync_to_thread=False),
            "enqueued": Provide(lambda: enqueued, sync_to_thread=False),
            "job_rate": Provide(lambda: job_rate, sync_to_thread=False),
            "runtime_settings": Provide(lambda: runtime_settings, sync_to_thread=False),
        },
        # Request metrics outermost, after auth put itself first: 401s are requests too.
        on_app_init=[create_jwt_auth(settings.jwt).on_app_init, _count_every_request],
        plugins=[
            problem_details_plugin(),
            ProblemDocs(),
            # A server span per request: the root of each job's trace.
            OpenTelemetryPlugin(
                OpenTelemetryConfig(
                    exclude=PUBLIC_PATHS, exclude_spans=["receive", "send"], scopes={ScopeType.HTTP}
                )
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(title="Conduit gateway", version="1", path="/schema"),
        lifespan=[
            lambda _app: settings_listener.running(),
            lambda _app: RecentLogs(redis, "gateway").installed(),
        ],
        on_startup=[register_metrics],
        on_shutdown=[shut_down],
        # Logging is configured once per process, as JSON, by shared.logging.
        logging_config=None,
        request_max_body_size=settings.gateway.max_body_bytes,
        cors_config=cors_config(settings.gateway.cors_origins),
    )
