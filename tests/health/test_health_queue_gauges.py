"""The queue gauges: read from a real Redis, exported on `/metrics`, kept through an outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import msgspec
import pytest
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from devstack.servers import RedisServer
from health.app import create_app
from health.metrics import QueueCollector, snapshot_families
from health.queues import QueuePoller
from health.settings import HealthSettings
from shared.clock import now_ms
from shared.connections import redis_client
from shared.jobstore import JobStore
from shared.queuestats import QueueSnapshot, entry_ms, lane_stats, read_snapshot
from shared.settings import DatabaseSettings, QueueSettings, RedisSettings
from shared.streams import DATA_FIELD, WORKER_GROUP, Lane
from tests.envelopes import job_envelope
from tests.streams import read_group

Serve = Callable[[Litestar], AbstractAsyncContextManager[str]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Only /metrics is asked for here: the engine is built but never connects.
UNUSED_DATABASE = DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:1/unused")
NORMAL = Lane("default")
HIGH = Lane("default", "high")


def samples(exposition: str) -> Samples:
    """Every sample of a /metrics text whose name starts with conduit_queue, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name.startswith("conduit_queue")
    }


def lane(queue: str, priority: str) -> tuple[tuple[str, str], ...]:
    return (("priority", priority), ("queue", queue))


async def fill_default_queue(redis: Redis, store: JobStore) -> None:
    """Normal lane: 3 jobs, 1 of them in hand (60 s old); high: 2 waiting; 1 delayed; 1 dead."""
    # An entry id is its stream's clock: one a minute old makes the oldest pending age a minute.
    old_id = f"{now_ms() - 60_000}-0"
    await redis.xadd(NORMAL.stream, {DATA_FIELD: msgspec.json.encode(job_envelope())}, id=old_id)
    [(read_id, _body)] = await read_group(redis, NORMAL.stream, "worker-1", count=1)
    assert read_id == old_id
    for _ in range(2):
        await store.enqueue(job_envelope())
    # A rejected entry goes to the dead letters and leaves the stream.
    await store.ensure_group(HIGH)
    await store.enqueue(job_envelope(priority="high"))
    [(rejected_id, raw)] = await read_group(redis, HIGH.stream, "worker-1")
    await store.reject(HIGH, rejected_id, raw.decode(), "does not decode", now_ms())
    for _ in range(2):
        await store.enqueue(job_envelope(priority="high"))
    await store.enqueue(job_envelope(delay_ms=3_600_000))


async def test_snapshot_counts_each_lane_and_queue_of_a_real_redis(
    redis: Redis, store: JobStore
) -> None:
    await fill_default_queue(redis, store)
    # A lane no worker has read yet: its stream exists, the worker group does not.
    for _ in range(4):
        await redis.xadd(Lane("reports", "low").stream, {DATA_FIELD: b"{}"})
    snapshot = await read_snapshot(redis, ["default", "reports"])
    by_lane = {(stats.queue, stats.priority): stats for stats in snapshot.lanes}
    assert list(by_lane) == [
        ("default", "high"),
        ("default", "normal"),
        ("default", "low"),
        ("reports", "high"),
        ("reports", "normal"),
        ("reports", "low"),
    ]
    normal = by_lane["default", "normal"]
    assert (normal.depth, normal.lag, normal.pending) == (3, 2, 1)
    assert 59 <= normal.oldest_pending_age_s < 70
    high = by_lane["default", "high"]
    assert (high.depth, high.lag, high.pending, high.oldest_pending_age_s) == (2, 2, 0, 0.0)
    # The first worker will create the group at id 0 and read the whole stream: all of it is lag.
    low = by_lane["reports", "low"]
    assert (low.depth, low.lag, low.pending, low.oldest_pending_age_s) == (4, 4, 0, 0.0)
    for key in (("default", "low"), ("reports", "high"), ("reports", "normal")):
        stats = by_lane[key]
        assert (stats.depth, stats.lag, stats.pending, stats.oldest_pending_age_s) == (0, 0, 0, 0)
    assert [(q.queue, q.delayed, q.dead_letters) for q in snapshot.queues] == [
        ("default", 1, 1),
        ("reports", 0, 0),
    ]


async def test_metrics_export_the_queue_gauges_by_queue_and_priority(
    serve: Serve, redis_url: str, redis: Redis, store: JobStore
) -> None:
    await fill_default_queue(redis, store)
    app = create_app(
        HealthSettings(),
        RedisSettings(url=redis_url),
        UNUSED_DATABASE,
        QueueSettings(names=("default", "reports")),
    )
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    exported = samples(response.text)
    assert exported[("conduit_queue_depth", lane("default", "normal"))] == 3
    assert exported[("conduit_queue_lag", lane("default", "normal"))] == 2
    assert exported[("conduit_queue_pending", lane("default", "normal"))] == 1
    age = exported[("conduit_queue_oldest_pending_age_seconds", lane("default", "normal"))]
    assert 59 <= age < 70
    # The high lane: two jobs waiting, the rejected one gone from the stream and acknowledged.
    assert exported[("conduit_queue_depth", lane("default", "high"))] == 2
    assert exported[("conduit_queue_lag", lane("default", "high"))] == 2
    assert exported[("conduit_queue_pending", lane("default", "high"))] == 0
    assert exported[("conduit_queue_delayed", (("queue", "default"),))] == 1
    assert exported[("conduit_queue_dead_letters", (("queue", "default"),))] == 1
    assert exported[("conduit_queue_depth", lane("reports", "low"))] == 0
    assert exported[("conduit_queue_dead_letters", (("queue", "reports"),))] == 0
    assert exported[("conduit_queue_stats_read_failures_total", ())] == 0
    assert exported[("conduit_queue_stats_updated_timestamp_seconds", ())] > 0


async def test_gauges_follow_the_queue_as_the_poller_reads_it_again(
    serve: Serve, redis_url: str, store: JobStore
) -> None:
    app = create_app(
        HealthSettings(queue_poll_s=0.05), RedisSettings(url=redis_url), UNUSED_DATABASE
    )
    depth = ("conduit_queue_depth", lane("default", "normal"))
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        # The first read happens before the app serves: the very first scrape has the gauges.
        assert samples((await client.get("/metrics")).text)[depth] == 0
        await store.enqueue(job_envelope())
        seen = []
        for _ in range(100):
            seen.append(samples((await client.get("/metrics")).text)[depth])
            if seen[-1] == 1:
                break
            await asyncio.sleep(0.05)
        assert seen[-1] == 1, seen


async def test_a_redis_outage_keeps_the_last_values_and_logs_a_warning(
    redis_server: RedisServer,
    redis_url: str,
    store: JobStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await store.enqueue(job_envelope())
    collector = QueueCollector()
    client = redis_client(RedisSettings(url=redis_url))
    poller = QueuePoller(client, ["default"], collector, interval_s=0.05)
    try:
        assert await poller.poll()
        before = samples_of(collector)
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="health.queues"):
            assert not await poller.poll()
            # The loop itself survives failed reads and keeps trying.
            running = asyncio.create_task(poller.run())
            await asyncio.sleep(0.2)
            assert not running.done()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
        assert "could not read the queue gauges from Redis" in caplog.text
        after = samples_of(collector)
        assert after.pop(("conduit_queue_stats_read_failures_total", ())) >= 2
        before.pop(("conduit_queue_stats_read_failures_total", ()))
        assert after == before
        assert after[("conduit_queue_depth", lane("default", "normal"))] == 1
        redis_server.start()
        assert await poller.poll()
    finally:
        if not redis_server.is_running:
            redis_server.start()
        await client.aclose()


def samples_of(collector: QueueCollector) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def test_a_lane_without_the_worker_group_counts_all_its_entries_as_lag() -> None:
    stats = lane_stats(NORMAL, 7, [], ResponseError("NOGROUP No such key"), now_ms=1_000)
    assert (stats.depth, stats.lag, stats.pending, stats.oldest_pending_age_s) == (7, 7, 0, 0.0)


def test_an_unknown_lag_is_the_entries_beyond_the_pending_ones() -> None:
    group = {"name": WORKER_GROUP.encode(), "pending": 2, "lag": None}
    pending = {"pending": 2, "min": b"9000-0", "max": b"9500-3", "consumers": []}
    stats = lane_stats(NORMAL, 5, [group], pending, now_ms=10_000)
    assert (stats.lag, stats.pending, stats.oldest_pending_age_s) == (3, 2, 1.0)


def test_an_entry_id_carries_its_milliseconds() -> None:
    assert entry_ms(b"1700000000123-4") == 1_700_000_000_123
    assert entry_ms("5-0") == 5


def test_without_a_snapshot_every_gauge_family_is_declared_without_samples() -> None:
    families = snapshot_families(None)
    assert [family.name for family in families] == [
        "conduit_queue_depth",
        "conduit_queue_lag",
        "conduit_queue_pending",
        "conduit_queue_oldest_pending_age_seconds",
        "conduit_queue_delayed",
        "conduit_queue_dead_letters",
    ]
    assert all(family.type == "gauge" and not family.samples for family in families)
    assert snapshot_families(QueueSnapshot(lanes=(), queues=()))[0].samples == []
