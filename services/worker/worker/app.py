"""The worker's composition root: FastStream consumers per lane, the loops beside them, probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.redis import RedisBroker, RedisClusterBroker, RedisSentinelBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from faststream.redis.prometheus import RedisPrometheusMiddleware
from prometheus_client import CollectorRegistry, make_asgi_app
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.connections import (
    REDIS_FAILURES,
    RETRY_ON,
    master_following,
    redis_client,
    sentinel_auth,
)
from shared.contracts.repeatables import Repeatable
from shared.db.session import create_engine, create_sessionmaker
from shared.jobstore import JobStore, StoreSettings
from shared.ratelimit import parse_rate_limits
from shared.recentlogs import RecentLogs
from shared.runtime.catalog import (
    COMPLETED_TTL_S,
    FAILED_TTL_S,
    RETRY_SCHEDULE_S,
    WORKER_CONCURRENCY,
    WORKER_RATE_LIMITS,
)
from shared.runtime.listener import SettingsListener, follow_log_level
from shared.runtime.store import RuntimeSettingsStore
from shared.settings import DatabaseSettings, QueueSettings, RedisSettings
from shared.streams import DATA_FIELD, WORKER_GROUP, Lane, lanes_of
from worker.admission import Admission, lane_weights, parse_queue_weights
from worker.handlers import callbacks, demo
from worker.heartbeat import HeartbeatLoop, JobActivity
from worker.pause import PauseGate, PauseWatch, Switch
from worker.pool import JobPool
from worker.ratelimit import RateLimiter
from worker.reclaim import LeaseKeeper, Reclaimer
from worker.registry import Registry
from worker.repeat import RepeatScheduler
from worker.retry import RetryPolicy
from worker.runner import JobRunner
from worker.scheduler import DuePromoter
from worker.settings import WorkerSettings
from worker.watch import ConsumerWatch

log = logging.getLogger(__name__)

RETRY_CEILING_S = 5.0
WATCH_INTERVAL_S = 2.0
PAUSE_INTERVAL_S = 1.0


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the worker reads from the environment."""

    redis: RedisSettings
    queues: QueueSettings
    worker: WorkerSettings
    jobs: StoreSettings = StoreSettings()
    # Where runtime settings are kept; without it the worker runs on its environment alone.
    database: DatabaseSettings | None = None


def create_registry(sender: callbacks.CallbackSender | None = None) -> Registry:
    """The job types this worker runs; outcome callbacks only with a sender to deliver them."""
    registry = Registry()
    demo.register(registry)
    if sender is not None:
        callbacks.register(registry, sender)
    return registry


def create_app(
    settings: Settings,
    registry: Registry | None = None,
    repeatables: Sequence[Repeatable] = (),
) -> AsgiFastStream:
    """Wire the broker, store, runner and promoter; serve /livez, /readyz and /metrics."""
    metrics = CollectorRegistry()
    broker = _broker(settings, metrics)
    redis = redis_client(settings.redis)
    store = JobStore(redis, settings.jobs)
    worker = settings.worker
    queues = settings.queues.names
    lanes = lanes_of(queues)
    sender = (
        callbacks.CallbackSender(worker.callback_secret, timeout_s=worker.callback_timeout_s)
        if worker.callback_secret
        else None
    )
    gate = PauseGate()
    admission = Admission(
        worker.concurrency, lane_weights(lanes, parse_queue_weights(worker.queue_weights))
    )
    # The job metrics, also noting the last job times that the heartbeat reports.
    activity = JobActivity(metrics)
    runner = JobRunner(
        store,
        registry or create_registry(sender),
        RetryPolicy(schedule_s=worker.retry_schedule_s),
        consumer=worker.consumer,
        max_deliveries=worker.max_deliveries,
        limiters=_rate_limiters(redis, queues, worker.rate_limits),
        metrics=activity,
        admission=admission,
        gate=gate,
    )
    pool = JobPool(runner, worker.concurrency)
    consumers = {lane: _subscribe(broker, pool, lane, worker) for lane in lanes}
    promoter = DuePromoter(store, queues, worker.promote_interval_s)
    repeater = RepeatScheduler(redis, store, queues, repeatables)
    leases = LeaseKeeper(
        store,
        runner,
        lanes,
        consumer=worker.consumer,
        visibility_timeout_s=worker.visibility_timeout_s,
    )
    reclaimer = Reclaimer(
        store,
        runner,
        lanes,
        consumer=worker.consumer,
        visibility_timeout_s=worker.visibility_timeout_s,
        interval_s=worker.reclaim_interval_s,
        concurrency=worker.concurrency,
        paused=gate.paused,
    )
    shutdown = _Shutdown(worker.grace_s)
    watch = ConsumerWatch(
        store,
        consumers,
        interval_s=WATCH_INTERVAL_S,
        stopping=lambda: shutdown.began,
        parked=gate.parked,
    )
    pauses = PauseWatch(
        redis,
        store,
        gate,
        consumers,
        consumer=worker.consumer,
        interval_s=PAUSE_INTERVAL_S,
        stopping=lambda: shutdown.began,
    )

    def begin_shutdown() -> None:
        shutdown.begin()
        reclaimer.stop_intake()
        pool.close()
        gate.close()

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        # Groups are created at id 0 before FastStream subscribes: it would create them at `$`
        # and never read the jobs enqueued before the first worker started.
        await _ensure_groups(store, lanes)
        # Before the broker starts the consumers: no job of a paused queue may start meanwhile.
        await pauses.check()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(redis.aclose)
            if settings.database is not None:
                engine = create_engine(settings.database)
                stack.push_async_callback(engine.dispose)
                listener = _runtime_settings(settings, engine, redis, store, runner, admission)
                await stack.enter_async_context(listener.running())
            # The recent log lines are flushed one last time before Redis closes.
            await stack.enter_async_context(RecentLogs(redis, "worker").installed())
            loops = [
                asyncio.create_task(promoter.run(), name="promote-due"),
                asyncio.create_task(leases.run(), name="renew-leases"),
                asyncio.create_task(repeater.run(), name="repeat"),
                asyncio.create_task(watch.run(), name="watch-consumers"),
                asyncio.create_task(pauses.run(), name="watch-pauses"),
                asyncio.create_task(
                    HeartbeatLoop(
                        redis, runner, activity, worker, queues, stopping=lambda: shutdown.began
                    ).run(),
                    name="heartbeat",
                ),
            ]
            # The jobs: those the consumers read, and those reclaimed from dead workers.
            running = [
                asyncio.create_task(pool.run(), name="run-jobs"),
                asyncio.create_task(reclaimer.run(), name="reclaim"),
            ]
            try:
                yield
            finally:
                await _wind_down(running, loops, shutdown.remaining_s())
                await _hand_back(store, lanes, worker)
                if sender is not None:
                    await sender.aclose()

    @get
    async def livez(scope: object) -> AsgiResponse:
        return AsgiResponse(b'{"status":"pass"}', 200, {"content-type": "application/json"})

    return AsgiFastStream(
        broker,
        logger=logging.getLogger("worker.app"),
        lifespan=lifespan,
        # Stops at once the consumers the broker just started of the queues paused now.
        after_startup=[pauses.check],
        on_shutdown=[begin_shutdown],
        asgi_routes=[
            ("/livez", livez),
            ("/readyz", make_ping_asgi(broker, timeout=2.0, include_in_schema=False)),
            ("/metrics", make_asgi_app(metrics)),
        ],
    )


def _broker(settings: Settings, metrics: CollectorRegistry) -> RedisBroker:
    redis = settings.redis
    options: dict[str, Any] = {
        "graceful_timeout": settings.worker.grace_s,
        # The consumers take no injected arguments. With FastDepends on, the message argument
        # (a Context field, resolved by a sync function) cost a thread-pool hop per job: a fifth
        # of the worker's CPU (make bench, py-spy).
        "apply_types": False,
        "middlewares": [RedisPrometheusMiddleware(registry=metrics)],
        "logger": logging.getLogger("worker.broker"),
        # FastStream's two lines per message ("Received", "Processed") at DEBUG: at thousands of
        # jobs a second, formatting them cost a fifth of the worker's CPU (make bench, py-spy).
        "log_level": logging.DEBUG,
        "retry_on_error": list(RETRY_ON),
    }
    if redis.sentinels:
        # Its client comes from Sentinel.master_for; the connection class is ours, so that a
        # read retried during a failover goes to the new master (see shared.connections).
        return RedisSentinelBroker(
            redis.url,
            sentinels=redis.sentinel_addresses,
            sentinel_master_name=redis.sentinel_master,
            sentinel_kwargs=sentinel_auth(redis),
            **master_following(redis),
            **options,
        )
    # Each lane's stream is one key, so a cluster broker reads it from the master of its slot.
    broker_class = RedisClusterBroker if redis.cluster else RedisBroker
    return broker_class(redis.url, **options)


def _runtime_settings(  # noqa: PLR0917 - the parts the settings steer
    settings: Settings,
    engine: AsyncEngine,
    redis: Redis,
    store: JobStore,
    runner: JobRunner,
    admission: Admission,
) -> SettingsListener:
    """The listener applying what the worker follows of the runtime settings."""
    listener = SettingsListener(redis, RuntimeSettingsStore(create_sessionmaker(engine), redis))
    follow_log_level(listener)
    listener.on(
        COMPLETED_TTL_S,
        lambda ttl_s: store.retain(completed_ttl_s=ttl_s),
        start=lambda: settings.jobs.completed_ttl_s,
    )
    listener.on(
        FAILED_TTL_S,
        lambda ttl_s: store.retain(failed_ttl_s=ttl_s),
        start=lambda: settings.jobs.failed_ttl_s,
    )
    listener.on(
        RETRY_SCHEDULE_S, runner.use_retry_schedule, start=lambda: settings.worker.retry_schedule_s
    )
    started_with = settings.worker.concurrency
    listener.on(
        WORKER_CONCURRENCY,
        # Above what it started with, its consumers could not hand it more jobs anyway.
        lambda slots: admission.resize(min(slots, started_with)),
        start=lambda: started_with,
    )
    listener.on(
        WORKER_RATE_LIMITS,
        lambda text: runner.use_limiters(_rate_limiters(redis, settings.queues.names, text)),
        start=lambda: settings.worker.rate_limits,
    )
    return listener


def _subscribe(broker: RedisBroker, pool: JobPool, lane: Lane, worker: WorkerSettings) -> Switch:
    # Acks are ours: each outcome's Lua script acks the entry in the same step that records it.
    # A batch a read: the pool runs its jobs, and the next read comes once the pool has room.
    subscriber = broker.subscriber(
        stream=StreamSub(
            lane.stream,
            group=WORKER_GROUP,
            consumer=worker.consumer,
            max_records=worker.concurrency,
            batch=True,
        ),
        ack_policy=AckPolicy.MANUAL,
        decoder=_entries,
    )

    @subscriber
    async def consume(entries: list[tuple[str, bytes]]) -> None:
        await pool.take(lane, entries)

    return subscriber


async def _entries(message: RedisBatchStreamMessage) -> list[tuple[str, bytes]]:
    """Each entry's id and its envelope's bytes, as written (FastStream's body is JSON)."""
    # Async on purpose: FastStream runs a sync decoder in a worker thread.
    raw = message.raw_message
    return [
        (entry_id.decode(), _envelope_bytes(fields))
        for entry_id, fields in zip(raw["message_ids"], raw["data"], strict=True)
    ]


def _envelope_bytes(fields: dict[bytes, bytes]) -> bytes:
    # An entry written by someone else, without the data field, is dead-lettered as it is.
    data = fields.get(DATA_FIELD.encode())
    if data is not None:
        return data
    return msgspec.json.encode(
        {
            key.decode(errors="replace"): value.decode(errors="replace")
            for key, value in fields.items()
        }
    )


def _rate_limiters(redis: Redis, queues: tuple[str, ...], text: str) -> dict[str, RateLimiter]:
    """One limiter per queue, when any limit is set: the same limits apply on every queue."""
    limits = parse_rate_limits(text)
    if not limits:
        return {}
    return {queue: RateLimiter(redis, queue, limits) for queue in queues}


class _Shutdown:
    """When the grace period began, and how much of it is left."""

    def __init__(self, grace_s: float) -> None:
        self._grace_s = grace_s
        self._deadline: float | None = None

    def begin(self) -> None:
        self._deadline = time.monotonic() + self._grace_s

    @property
    def began(self) -> bool:
        return self._deadline is not None

    def remaining_s(self) -> float:
        if self._deadline is None:
            return 0.0
        return max(self._deadline - time.monotonic(), 0.0)


async def _wind_down(
    running: list[asyncio.Task[None]], loops: list[asyncio.Task[None]], grace_s: float
) -> None:
    """Give the jobs in hand `grace_s` to end, then stop them and every loop."""
    # FastStream has stopped its consumers by now. Leases are renewed until the very end.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(asyncio.gather(*running)), grace_s)
    for task in (*loops, *running):
        task.cancel()
    await asyncio.gather(*loops, *running, return_exceptions=True)


async def _hand_back(store: JobStore, lanes: tuple[Lane, ...], worker: WorkerSettings) -> None:
    """Leave no job waiting on a lease that will never be renewed: others take them at once."""
    for lane in lanes:
        try:
            handed = await store.hand_back(lane, worker.consumer)
        except REDIS_FAILURES as exc:
            log.warning("could not hand back unfinished jobs; they are reclaimed later: %s", exc)
            return
        if handed:
            log.info("handed back unfinished jobs", extra={"stream": lane.stream, "count": handed})


async def _ensure_groups(store: JobStore, lanes: tuple[Lane, ...]) -> None:
    """Create every lane's group, waiting out a Redis that is not up yet."""
    delay_s = 0.1
    while True:
        try:
            for lane in lanes:
                await store.ensure_group(lane)
        except REDIS_FAILURES as exc:
            log.warning("Redis not reachable yet, retrying in %.1fs: %s", delay_s, exc)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_CEILING_S)
        else:
            return
