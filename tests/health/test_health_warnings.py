"""The warn checks: queue lag, oldest pending job, growing dead letters, Redis memory and AOF.

Judged as pure functions, then fabricated on a real Redis under a served health app: each one
warns with 200, never 503, alone or all at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from redis.asyncio import Redis

from health.app import create_app
from health.queuechecks import (
    DeadLetterTrend,
    QueueWatch,
    StaleFiguresError,
    dead_letter_findings,
    lag_findings,
    pending_age_findings,
)
from health.redischecks import aof_finding, memory_finding
from health.settings import HealthSettings
from shared.clock import now_ms
from shared.heartbeats import Heartbeat
from shared.jobstore import JobStore
from shared.queuestats import LaneStats, QueueSnapshot, QueueStats
from shared.settings import DatabaseSettings, RedisSettings
from shared.streams import DATA_FIELD, Lane
from tests.envelopes import job_envelope
from tests.streams import read_group

Serve = Callable[[Litestar], AbstractAsyncContextManager[str]]
Health = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
Document = dict[str, Any]

NORMAL = Lane("default")
WARN_CHECKS = (
    "queues:lag",
    "queues:oldestPendingAge",
    "queues:deadLetters",
    "redis:memory",
    "redis:aof",
)


def lane(queue: str, priority: str = "normal", *, lag: int = 0, age_s: float = 0.0) -> LaneStats:
    return msgspec.convert(
        {
            "queue": queue,
            "priority": priority,
            "depth": lag,
            "lag": lag,
            "pending": 0,
            "oldest_pending_age_s": age_s,
        },
        LaneStats,
    )


def snapshot(*lanes: LaneStats, dead: dict[str, int] | None = None) -> QueueSnapshot:
    queues = sorted({stats.queue for stats in lanes} | set(dead or {}))
    return QueueSnapshot(
        lanes=lanes,
        queues=tuple(
            QueueStats(queue=queue, delayed=0, dead_letters=(dead or {}).get(queue, 0))
            for queue in queues
        ),
        at_ms=1_800_000_000_000,
    )


# The pure judgements.


def test_lag_warns_per_queue_above_its_limit_summed_over_priorities() -> None:
    figures = snapshot(
        lane("default", "high", lag=600),
        lane("default", lag=401),
        lane("reports", lag=1000),
    )
    by_queue = {finding.component_id: finding for finding in lag_findings(figures, 1000)}
    assert (by_queue["default"].ok, by_queue["default"].observed_value) == (False, 1001)
    assert by_queue["default"].output == "1001 jobs wait unread, over 1000"
    # At the limit is still fine.
    assert (by_queue["reports"].ok, by_queue["reports"].output) == (True, None)


def test_the_oldest_pending_job_warns_past_its_limit() -> None:
    figures = snapshot(lane("default", "low", age_s=301.0), lane("reports", age_s=300.0))
    by_queue = {f.component_id: f for f in pending_age_findings(figures, 300.0)}
    assert not by_queue["default"].ok
    assert by_queue["default"].output == "the oldest pending job is 301 s old, over 300 s"
    assert by_queue["reports"].ok


def test_dead_letters_added_within_the_window_warn_until_it_passes() -> None:
    trend = DeadLetterTrend(window_s=10.0)
    trend.add(0.0, {"default": 3})
    assert trend.growth() == {}
    trend.add(5.0, {"default": 5})
    assert trend.growth() == {"default": 2}
    trend.add(12.0, {"default": 5})
    # The rise at 5 s is still within 10 s of the read at 12 s (the read at 0 s is the baseline).
    assert trend.growth() == {"default": 2}
    trend.add(16.0, {"default": 5})
    assert trend.growth() == {"default": 0}


def test_a_purge_within_the_window_hides_no_dead_letter_added_after_it() -> None:
    trend = DeadLetterTrend(window_s=60.0)
    for at_s, count in ((0.0, 100), (1.0, 0), (2.0, 4)):
        trend.add(at_s, {"default": count})
    assert trend.growth() == {"default": 4}
    [finding] = dead_letter_findings(snapshot(dead={"default": 4}), trend.growth(), 60.0)
    assert not finding.ok
    assert finding.output == "4 new dead letters within the last 60 s (4 in all)"


def test_a_window_shorter_than_the_poll_compares_with_the_previous_read_only() -> None:
    trend = DeadLetterTrend(window_s=0.1)
    trend.add(0.0, {"default": 1})
    trend.add(5.0, {"default": 2})
    assert trend.growth() == {"default": 1}
    trend.add(10.0, {"default": 2})
    assert trend.growth() == {"default": 0}


def test_stale_queue_figures_are_not_judged() -> None:
    now = [100.0]
    watch = QueueWatch(stale_after_s=15.0, dead_letters_window_s=60.0, clock=lambda: now[0])
    with pytest.raises(StaleFiguresError, match="not been read yet"):
        watch.current()
    watch.update(snapshot(lane("default")))
    now[0] = 115.0
    assert watch.current().lanes[0].queue == "default"
    watch.failed()
    now[0] = 116.0
    with pytest.raises(StaleFiguresError, match=r"last read 16\.0 s ago"):
        watch.current()


def test_memory_warns_near_maxmemory_and_passes_without_one() -> None:
    unlimited = memory_finding({"used_memory": 1_000_000, "maxmemory": 0}, 0.9)
    assert (unlimited.ok, unlimited.observed_value, unlimited.observed_unit) == (
        True,
        1_000_000,
        "bytes",
    )
    near = memory_finding({"used_memory": 950, "maxmemory": 1000}, 0.9)
    assert (near.ok, near.observed_unit) == (False, "%")
    assert near.observed_value == pytest.approx(95.0)
    assert near.output == "Redis uses 95% of its maxmemory (950 of 1000 bytes), over 90%"
    assert memory_finding({"used_memory": 900, "maxmemory": 1000}, 0.9).ok


def test_an_evicting_maxmemory_policy_warns_however_little_memory_is_used() -> None:
    evicting = {"used_memory": 10, "maxmemory": 1000, "maxmemory_policy": "allkeys-lru"}
    unlimited = {"used_memory": 10, "maxmemory": 0, "maxmemory_policy": "allkeys-lru"}

    finding = memory_finding(evicting, 0.9)

    assert not finding.ok
    assert finding.output == (
        "maxmemory-policy is allkeys-lru: a full Redis evicts jobs; use noeviction"
    )
    assert memory_finding(unlimited, 0.9).ok
    assert memory_finding({**evicting, "maxmemory_policy": "noeviction"}, 0.9).ok


def test_aof_off_or_failing_warns() -> None:
    assert aof_finding({"aof_enabled": 1, "aof_last_write_status": "ok"}).ok
    off = aof_finding({"aof_enabled": 0})
    assert not off.ok
    assert off.output is not None
    assert off.output.startswith("AOF is off")
    failing = aof_finding({"aof_enabled": 1, "aof_last_write_status": b"err"})
    assert failing.output == "the last AOF write failed (aof_last_write_status:err)"


# Fabricated on a real Redis, through GET /health.


@pytest.fixture
def health(
    serve: Serve,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
    live_worker: Heartbeat,
) -> Health:
    """health(**HEALTH_settings): a client of a served health app where every critical check
    passes, its queue figures read every 50 ms."""

    @asynccontextmanager
    async def served(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            HealthSettings(
                gateway_url=livez_urls["gateway"],
                notifier_url=livez_urls["notifier"],
                queue_poll_s=0.05,
                **settings,
            ),
            RedisSettings(url=redis_url),
            DatabaseSettings(url=database_url),
        )
        async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
            yield client

    return served


async def warned(client: httpx.AsyncClient, name: str, timeout_s: float = 5.0) -> Document:
    """The document once check `name` warns; always answered with 200 meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get("/health")
        assert response.status_code == 200, response.text
        doc: Document = response.json()
        if any(entry["status"] == "warn" for entry in doc["checks"][name]):
            return doc
        assert time.monotonic() < deadline, f"{name} did not warn: {doc['checks'][name]}"
        await asyncio.sleep(0.05)


def warnings(doc: Document) -> dict[str, list[str]]:
    """The outputs of the warning entries, by check."""
    return {
        name: [entry["output"] for entry in entries if entry["status"] == "warn"]
        for name, entries in doc["checks"].items()
        if any(entry["status"] == "warn" for entry in entries)
    }


async def test_queue_lag_over_its_limit_warns_with_200(health: Health, store: JobStore) -> None:
    async with health(warn_lag_jobs=2) as client:
        response = await client.get("/health")
        assert response.json()["status"] == "pass"
        for _ in range(3):
            await store.enqueue(job_envelope())
        doc = await warned(client, "queues:lag")
    assert doc["status"] == "warn"
    assert warnings(doc) == {"queues:lag": ["3 jobs wait unread, over 2"]}
    [entry] = doc["checks"]["queues:lag"]
    assert (entry["componentId"], entry["observedValue"], entry["observedUnit"]) == (
        "default",
        3,
        "jobs",
    )


async def test_an_old_pending_job_warns_with_200(
    health: Health, redis: Redis, store: JobStore
) -> None:
    # An entry id is its stream's clock: one a minute old, read and never finished.
    old_id = f"{now_ms() - 60_000}-0"
    await redis.xadd(NORMAL.stream, {DATA_FIELD: msgspec.json.encode(job_envelope())}, id=old_id)
    await read_group(redis, NORMAL.stream, "stuck-worker", count=1)
    async with health(warn_pending_age_s=30) as client:
        doc = await warned(client, "queues:oldestPendingAge")
    assert doc["status"] == "warn"
    [output] = warnings(doc)["queues:oldestPendingAge"]
    assert output.startswith("the oldest pending job is 6")
    assert output.endswith("s old, over 30 s")


async def test_new_dead_letters_warn_with_200_for_the_window_then_pass(
    health: Health, redis: Redis, store: JobStore
) -> None:
    async with health(warn_dead_letters_window_s=1.0) as client:
        assert (await client.get("/health")).json()["status"] == "pass"
        await store.enqueue(job_envelope())
        [(entry_id, raw)] = await read_group(redis, NORMAL.stream, "worker-1")
        await store.reject(NORMAL, entry_id, raw.decode(), "does not decode", now_ms())
        doc = await warned(client, "queues:deadLetters")
        assert warnings(doc) == {
            "queues:deadLetters": ["1 new dead letters within the last 1 s (1 in all)"]
        }
        # No more arrive: once the window has passed, the check passes again.
        deadline = time.monotonic() + 5
        while (doc := (await client.get("/health")).json())["status"] != "pass":
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.1)
    [entry] = doc["checks"]["queues:deadLetters"]
    assert (entry["status"], entry["observedValue"]) == ("pass", 1)


@pytest.fixture
async def maxmemory(redis: Redis) -> AsyncIterator[int]:
    """Sets the test Redis's maxmemory to 4x the memory it uses (ratio about 0.25); restores it."""
    before = await redis.config_get("maxmemory")
    used = int((await redis.info("memory"))["used_memory"])
    limit = used * 4
    await redis.config_set("maxmemory", limit)
    try:
        yield limit
    finally:
        await redis.config_set("maxmemory", _value(before, "maxmemory"))


@pytest.fixture
async def aof_off(redis: Redis) -> AsyncIterator[None]:
    """Turns AOF off on the test Redis; on again afterwards, once its rewrite is done."""
    await redis.config_set("appendonly", "no")
    try:
        yield
    finally:
        await redis.config_set("appendonly", "yes")
        # Turning it on rewrites the file in the background: later tests restart this Redis.
        deadline = time.monotonic() + 30
        while True:
            info = await redis.info("persistence")
            rewriting = info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]
            if info["aof_enabled"] == 1 and not rewriting:
                break
            assert time.monotonic() < deadline, "the AOF rewrite did not finish"
            await asyncio.sleep(0.05)


def _value(config: Any, name: str) -> str:
    value = config.get(name, config.get(name.encode()))
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_redis_memory_near_maxmemory_warns_with_200(health: Health, maxmemory: int) -> None:
    async with health(warn_redis_memory_ratio=0.1) as client:
        doc = await warned(client, "redis:memory")
    [entry] = doc["checks"]["redis:memory"]
    assert entry["observedUnit"] == "%"
    assert 10 < entry["observedValue"] < 60
    assert entry["output"].endswith(f"of {maxmemory} bytes), over 10%")


async def test_aof_off_warns_with_200(health: Health, aof_off: None) -> None:
    async with health() as client:
        doc = await warned(client, "redis:aof")
    assert doc["status"] == "warn"
    assert list(warnings(doc)) == ["redis:aof"]


async def test_every_warn_check_warning_at_once_still_answers_200(
    health: Health, redis: Redis, store: JobStore, maxmemory: int, aof_off: None
) -> None:
    old_id = f"{now_ms() - 60_000}-0"
    await redis.xadd(NORMAL.stream, {DATA_FIELD: msgspec.json.encode(job_envelope())}, id=old_id)
    await read_group(redis, NORMAL.stream, "stuck-worker", count=1)
    async with health(
        warn_lag_jobs=0,
        warn_pending_age_s=30,
        warn_dead_letters_window_s=60,
        warn_redis_memory_ratio=0.1,
    ) as client:
        await store.enqueue(job_envelope())
        [(entry_id, raw)] = await read_group(redis, NORMAL.stream, "worker-1")
        await store.reject(NORMAL, entry_id, raw.decode(), "does not decode", now_ms())
        await store.enqueue(job_envelope())
        deadline = time.monotonic() + 5
        while True:
            response = await client.get("/health")
            assert response.status_code == 200, response.text
            doc = response.json()
            if set(warnings(doc)) == set(WARN_CHECKS):
                break
            assert time.monotonic() < deadline, warnings(doc)
            await asyncio.sleep(0.05)
    assert doc["status"] == "warn"
    assert all(
        entry["status"] == "pass"
        for name in ("redis", "postgres", "gateway", "notifier", "worker")
        for entry in doc["checks"][name]
    )
