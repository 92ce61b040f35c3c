"""Worker heartbeats in a real Redis: published, aged by Redis's clock, expired, withdrawn."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.heartbeats import (
    FORGET_AFTER_MS,
    Heartbeat,
    LostWorker,
    publish,
    read_heartbeats,
    withdraw,
)
from shared.streams import WORKERS_KEY, worker_heartbeat


def heartbeat(worker_id: str = "host-1-42", **fields: object) -> Heartbeat:
    now = now_ms()
    values: dict[str, object] = {
        "id": worker_id,
        "host": "host-1",
        "pid": 42,
        "version": "0.1.0",
        "queues": ("default", "reports"),
        "concurrency": 8,
        "in_hand": 3,
        "running": 2,
        "started_at_ms": now - 5_000,
        "beat_at_ms": now,
        "ttl_ms": 6_000,
        "last_job_started_at_ms": now - 100,
        "last_job_finished_at_ms": now - 50,
        **fields,
    }
    return msgspec.convert(values, Heartbeat)


def test_a_heartbeat_round_trips_and_an_older_writer_without_optional_fields_decodes() -> None:
    beat = heartbeat(stopping=True)
    assert msgspec.json.decode(msgspec.json.encode(beat), type=Heartbeat) == beat
    older = msgspec.structs.asdict(beat)
    for optional in ("last_job_started_at_ms", "last_job_finished_at_ms", "stopping"):
        del older[optional]
    decoded = msgspec.json.decode(msgspec.json.encode(older), type=Heartbeat)
    assert (decoded.last_job_started_at_ms, decoded.stopping) == (None, False)


async def test_a_published_heartbeat_is_read_back_live_with_its_age_by_redis_clock(
    redis: Redis,
) -> None:
    beat = heartbeat()
    await publish(redis, beat)
    await asyncio.sleep(0.2)
    seen = await read_heartbeats(redis)
    assert seen.lost == ()
    [live] = seen.live
    assert live.heartbeat == beat
    assert 150 <= live.age_ms < 2_000
    # One key per worker, expiring by itself; the index holds its last beat.
    assert 0 < await redis.pttl(worker_heartbeat(beat.id)) <= 6_000
    assert await redis.zscore(WORKERS_KEY, beat.id) == beat.beat_at_ms


async def test_a_heartbeat_not_renewed_expires_and_its_worker_is_reported_lost(
    redis: Redis,
) -> None:
    dead_beat = heartbeat("dies", ttl_ms=200)
    await publish(redis, dead_beat)
    await publish(redis, heartbeat("lives"))
    await asyncio.sleep(0.4)
    seen = await read_heartbeats(redis)
    assert [live.heartbeat.id for live in seen.live] == ["lives"]
    assert seen.lost == (LostWorker(id="dies", last_beat_at_ms=dead_beat.beat_at_ms),)


async def test_a_withdrawn_heartbeat_leaves_neither_key_nor_index_entry(redis: Redis) -> None:
    beat = heartbeat()
    await publish(redis, beat)
    await withdraw(redis, beat.id)
    seen = await read_heartbeats(redis)
    assert (seen.live, seen.lost) == ((), ())
    assert await redis.exists(worker_heartbeat(beat.id), WORKERS_KEY) == 0


async def test_each_beat_forgets_workers_not_heard_of_for_an_hour(redis: Redis) -> None:
    now = now_ms()
    await redis.zadd(WORKERS_KEY, {"long-gone": now - FORGET_AFTER_MS - 1, "recent": now - 1})
    await publish(redis, heartbeat("beating"))
    assert await redis.zscore(WORKERS_KEY, "long-gone") is None
    assert await redis.zscore(WORKERS_KEY, "recent") is not None
    assert await redis.zscore(WORKERS_KEY, "beating") is not None


async def test_a_heartbeat_that_does_not_decode_is_skipped_with_a_warning(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(redis, heartbeat("good"))
    await redis.set(worker_heartbeat("broken"), b'{"id": "broken"}', px=60_000)
    await redis.zadd(WORKERS_KEY, {"broken": now_ms()})
    with caplog.at_level(logging.WARNING, logger="shared.heartbeats"):
        seen = await read_heartbeats(redis)
    assert [live.heartbeat.id for live in seen.live] == ["good"]
    assert "ignoring a heartbeat that does not decode" in caplog.text
