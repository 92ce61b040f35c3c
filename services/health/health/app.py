"""The composition root: settings in, a Litestar app out; clients live for the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import httpx
from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from health.aggregate import (
    MEDIA_TYPE,
    ComponentType,
    HealthReport,
    build_report,
    http_status_code,
)
from health.metrics import QueueCollector
from health.probes import Check, Probe, http_livez, postgres_select, redis_ping, run_checks
from health.queuechecks import QueueWatch, dead_letters_growing, oldest_pending, queue_lag
from health.queues import QueuePoller, SnapshotSinks
from health.redischecks import redis_aof, redis_memory
from health.settings import HealthSettings
from health.workers import worker_heartbeats
from shared.connections import redis_client as shared_redis_client
from shared.connections import sentinel_client
from shared.db.session import create_engine, create_sessionmaker
from shared.recentlogs import RecentLogs
from shared.runtime.listener import SettingsListener, follow_log_level
from shared.runtime.store import RuntimeSettingsStore
from shared.settings import DatabaseSettings, QueueSettings, RedisSettings, SettingsError

SERVICE = "health"
CHECK_NAMES = ("redis", "postgres", "gateway", "notifier", "worker")


@dataclass(frozen=True, kw_only=True)
class HealthMonitor:
    """Runs every check and turns the results into the health document."""

    checks: tuple[Check, ...]
    timeout_s: float
    version: str
    started_at: float

    async def report(self) -> HealthReport:
        """Probe everything now; each probe is bounded by `timeout_s`, all run at once."""
        results = await run_checks(self.checks, self.timeout_s)
        return build_report(
            results, version=self.version, uptime_s=time.monotonic() - self.started_at
        )


def provide_monitor(state: State) -> HealthMonitor:
    """The monitor the lifespan put in the app's state."""
    monitor: HealthMonitor = state.monitor
    return monitor


@get("/health", media_type=MEDIA_TYPE)
async def health(monitor: NamedDependency[HealthMonitor]) -> Response[HealthReport]:
    """Every dependency's status and latency: 200 while all critical checks pass, else 503."""
    report = await monitor.report()
    return Response(report, status_code=http_status_code(report.status), media_type=MEDIA_TYPE)


@get("/livez", media_type=MediaType.JSON)
async def livez() -> dict[str, str]:
    """The process is alive; nothing else is checked."""
    return {"status": "pass"}


@get("/readyz", media_type=MediaType.JSON)
async def readyz() -> dict[str, str]:
    """Ready once serving: the health service reports on dependencies, it does not need them."""
    return {"status": "pass"}


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(
    settings: HealthSettings,
    redis: RedisSettings,
    database: DatabaseSettings,
    queues: QueueSettings | None = None,
) -> Litestar:
    """The health service: probes built from `settings`, clients opened at startup.

    While it runs, the gauges of `queues` (default: the queue `default`) are read every
    `settings.queue_poll_s`, exported on `/metrics` and judged by the queue warn checks.
    """
    queue_names = (queues or QueueSettings()).names
    unknown = set(settings.optional_checks) - set(CHECK_NAMES)
    if unknown:
        raise SettingsError(f"HEALTH_OPTIONAL_CHECKS names unknown checks: {sorted(unknown)}")
    timeout_s = settings.probe_timeout_s

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # No retries inside a probe: the check reports what it sees now, within its timeout.
            options: dict[str, Any] = {
                "socket_connect_timeout": timeout_s,
                "socket_timeout": timeout_s,
                "retry": Retry(NoBackoff(), 0),
            }
            redis_client: Redis
            if redis.sentinels:
                redis_client = sentinel_client(redis, **options)
            else:
                # A cluster client is typed as Redis, as shared.connections explains.
                client_class = RedisCluster if redis.cluster else Redis
                redis_client = client_class.from_url(redis.url, **options)  # type: ignore[assignment]
            stack.push_async_callback(redis_client.aclose)
            engine = create_engine(database)
            stack.push_async_callback(engine.dispose)
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=timeout_s))
            # The queue warn checks judge the poller's latest read rather than reading again; a
            # read older than a few polls is too stale to judge by.
            watch = QueueWatch(
                stale_after_s=3 * settings.queue_poll_s + timeout_s,
                dead_letters_window_s=settings.warn_dead_letters_window_s,
            )
            probes: dict[str, tuple[ComponentType, Probe]] = {
                "redis": ("datastore", redis_ping(redis_client)),
                "postgres": ("datastore", postgres_select(engine)),
                "gateway": ("component", http_livez(http, settings.gateway_url)),
                "notifier": ("component", http_livez(http, settings.notifier_url)),
                "worker": ("component", worker_heartbeats(redis_client)),
            }
            # Never critical: they warn (still 200) and cannot fail the document.
            warn_probes: dict[str, tuple[ComponentType, Probe]] = {
                "queues:lag": ("component", queue_lag(watch, settings.warn_lag_jobs)),
                "queues:oldestPendingAge": (
                    "component",
                    oldest_pending(watch, settings.warn_pending_age_s),
                ),
                "queues:deadLetters": (
                    "component",
                    dead_letters_growing(watch, settings.warn_dead_letters_window_s),
                ),
                "redis:memory": (
                    "datastore",
                    redis_memory(redis_client, settings.warn_redis_memory_ratio),
                ),
                "redis:aof": ("datastore", redis_aof(redis_client)),
            }
            app.state.monitor = HealthMonitor(
                checks=(
                    *(
                        Check(
                            name=name,
                            component_type=component_type,
                            probe=probe,
                            critical=name not in settings.optional_checks,
                        )
                        for name, (component_type, probe) in probes.items()
                    ),
                    *(
                        Check(name=name, component_type=component_type, probe=probe, critical=False)
                        for name, (component_type, probe) in warn_probes.items()
                    ),
                ),
                timeout_s=timeout_s,
                version=package_version("conduit-health"),
                started_at=time.monotonic(),
            )
            collector = QueueCollector()
            REGISTRY.register(collector)
            stack.callback(REGISTRY.unregister, collector)
            poller = QueuePoller(
                redis_client,
                queue_names,
                SnapshotSinks(collector, watch),
                interval_s=settings.queue_poll_s,
            )
            # One read before serving, so that the first scrape has the gauges; a failure only
            # logs (bounded by the client's socket timeouts), and the loop keeps trying.
            await poller.poll()
            stack.push_async_callback(_stop, asyncio.create_task(poller.run(), name="queue-gauges"))
            await stack.enter_async_context(RecentLogs(redis_client, SERVICE).installed())
            # Its own client: the probes' one times out in seconds, a subscription idles longer.
            settings_redis = shared_redis_client(redis)
            stack.push_async_callback(settings_redis.aclose)
            listener = SettingsListener(
                settings_redis, RuntimeSettingsStore(create_sessionmaker(engine), settings_redis)
            )
            follow_log_level(listener)
            await stack.enter_async_context(listener.running())
            yield

    prometheus = PrometheusConfig(app_name=SERVICE, group_path=True, exclude_unhandled_paths=True)
    return Litestar(
        route_handlers=[health, livez, readyz, PrometheusController],
        dependencies={"monitor": Provide(provide_monitor, sync_to_thread=False)},
        middleware=[prometheus.middleware],
        lifespan=[lifespan],
        # Logging is configured once per process, as JSON, by shared.logging.
        logging_config=None,
    )
