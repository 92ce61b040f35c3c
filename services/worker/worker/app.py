"""The worker's composition root: FastStream consumers per queue, the promoter and probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from faststream.redis.prometheus import RedisPrometheusMiddleware
from prometheus_client import CollectorRegistry, make_asgi_app
from redis.exceptions import RedisError

from shared.connections import RETRY_ON, redis_client
from shared.jobstore import JobStore
from shared.settings import QueueSettings, RedisSettings
from shared.streams import WORKER_GROUP, QueueKeys
from worker.handlers import demo
from worker.registry import Registry
from worker.retry import RetryPolicy
from worker.runner import JobRunner
from worker.scheduler import DuePromoter
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

RETRY_CEILING_S = 5.0


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the worker reads from the environment."""

    redis: RedisSettings
    queues: QueueSettings
    worker: WorkerSettings


def create_registry() -> Registry:
    """The job types this worker runs."""
    registry = Registry()
    demo.register(registry)
    return registry


def create_app(settings: Settings, registry: Registry | None = None) -> AsgiFastStream:
    """Wire the broker, store, runner and promoter; serve /livez, /readyz and /metrics."""
    metrics = CollectorRegistry()
    broker = RedisBroker(
        settings.redis.url,
        graceful_timeout=settings.worker.grace_s,
        middlewares=[RedisPrometheusMiddleware(registry=metrics)],
        logger=logging.getLogger("worker.broker"),
        retry_on_error=list(RETRY_ON),
    )
    redis = redis_client(settings.redis)
    store = JobStore(redis)
    runner = JobRunner(
        store,
        registry or create_registry(),
        RetryPolicy(schedule_s=settings.worker.retry_schedule_s),
    )
    for queue in settings.queues.names:
        _subscribe(broker, runner, queue, settings.worker)
    promoter = DuePromoter(store, settings.queues.names, settings.worker.promote_interval_s)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        # Groups are created at id 0 before FastStream subscribes: it would create them at `$`
        # and never read the jobs enqueued before the first worker started.
        await _ensure_groups(store, settings.queues.names)
        promoting = asyncio.create_task(promoter.run(), name="promote-due")
        try:
            yield
        finally:
            promoting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await promoting
            await redis.aclose()

    @get
    async def livez(scope: object) -> AsgiResponse:
        return AsgiResponse(b'{"status":"pass"}', 200, {"content-type": "application/json"})

    return AsgiFastStream(
        broker,
        logger=logging.getLogger("worker.app"),
        lifespan=lifespan,
        asgi_routes=[
            ("/livez", livez),
            ("/readyz", make_ping_asgi(broker, timeout=2.0, include_in_schema=False)),
            ("/metrics", make_asgi_app(metrics)),
        ],
    )


def _subscribe(broker: RedisBroker, runner: JobRunner, queue: str, worker: WorkerSettings) -> None:
    # Acks are ours: each outcome's Lua script acks the entry in the same step that records it.
    @broker.subscriber(
        stream=StreamSub(
            QueueKeys(queue).stream,
            group=WORKER_GROUP,
            consumer=worker.consumer,
            max_records=worker.concurrency,
        ),
        max_workers=worker.concurrency,
        ack_policy=AckPolicy.MANUAL,
    )
    async def consume(message: RedisStreamMessage) -> None:
        entry_id = message.raw_message["message_ids"][0].decode()
        await runner.run(queue, entry_id, message.body)


async def _ensure_groups(store: JobStore, queues: tuple[str, ...]) -> None:
    """Create every queue's group, waiting out a Redis that is not up yet."""
    delay_s = 0.1
    while True:
        try:
            for queue in queues:
                await store.ensure_group(queue)
        except (RedisError, OSError) as exc:
            log.warning("Redis not reachable yet, retrying in %.1fs: %s", delay_s, exc)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_CEILING_S)
        else:
            return
