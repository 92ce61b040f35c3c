"""1. The raw Redis limit: what redis-py and this Redis do with no Conduit in between.

Its consumer rate and single-client round trip are the references every other figure of the
run is divided by, so that a slow or busy machine shows as such and not as a slow Conduit.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from redis.asyncio import Redis

from benchmarks.context import BenchContext
from benchmarks.figures import (
    RAW_RATE_KEY,
    RAW_ROUND_TRIP_KEY,
    Figure,
    ScenarioResult,
    percentile,
)

NAME = "raw"
TITLE = "1. Raw Redis limit"

_READ_STREAM = "bench:raw:read"
_XADD_STREAM = "bench:raw:xadd"
_ROUND_TRIP_STREAM = "bench:raw:round-trip"
_GROUP = "bench"
_FILL_CHUNK = 1_000


async def run(ctx: BenchContext) -> ScenarioResult:
    """One consumer's XREADGROUP + XACK rate, XADD from many clients, one client's round trip."""
    config = ctx.config
    redis = ctx.redis
    value = b"x" * config.raw_entry_bytes
    await redis.delete(_READ_STREAM, _XADD_STREAM, _ROUND_TRIP_STREAM)
    try:
        await _fill(redis, config.raw_entries, value)
        consumed_per_s = await _consume(redis, config.raw_entries, config.raw_read_count)
        added_per_s = await _add_concurrently(
            redis, config.raw_xadd_entries, config.raw_xadd_clients, value
        )
        round_trips_ms = await _round_trips(redis, config.raw_round_trips, value)
    finally:
        await redis.delete(_READ_STREAM, _XADD_STREAM, _ROUND_TRIP_STREAM)
    figures = (
        Figure(
            key=RAW_RATE_KEY,
            label=f"XREADGROUP COUNT {config.raw_read_count} + XACK, 1 consumer",
            value=consumed_per_s,
            unit="entries/s",
            kind="rate",
        ),
        Figure(
            key="raw.xadd",
            label=f"XADD, {config.raw_xadd_clients} concurrent clients",
            value=added_per_s,
            unit="entries/s",
            kind="rate",
        ),
        Figure(
            key=RAW_ROUND_TRIP_KEY,
            label="XADD round trip, 1 client, p50",
            value=percentile(round_trips_ms, 50),
            unit="ms",
            kind="latency",
        ),
        Figure(
            key="raw.round_trip.p99",
            label="XADD round trip, 1 client, p99",
            value=percentile(round_trips_ms, 99),
            unit="ms",
            kind="latency",
        ),
    )
    notes = (
        f"{config.raw_entry_bytes}-byte entries; one redis-py asyncio client per role, "
        "as shared.connections builds it",
    )
    return ScenarioResult(name=NAME, title=TITLE, figures=figures, notes=notes)


async def _fill(redis: Redis, entries: int, value: bytes) -> None:
    for first in range(0, entries, _FILL_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(min(_FILL_CHUNK, entries - first)):
                pipe.xadd(_READ_STREAM, {"d": value})
            await pipe.execute()
    await redis.xgroup_create(_READ_STREAM, _GROUP, id="0")


async def _consume(redis: Redis, entries: int, count: int) -> float:
    """Read and ack every entry in batches of `count`, awaiting each call; entries/s."""
    read = 0
    started = time.perf_counter()
    while read < entries:
        answer = cast(
            "list[tuple[bytes, list[tuple[bytes, Any]]]]",
            await redis.xreadgroup(_GROUP, "consumer", {_READ_STREAM: ">"}, count=count),
        )
        if not answer:
            break
        ids = [entry_id for _stream, batch in answer for entry_id, _fields in batch]
        await redis.xack(_READ_STREAM, _GROUP, *ids)
        read += len(ids)
    elapsed_s = time.perf_counter() - started
    if read < entries:
        raise RuntimeError(f"read {read} of {entries} entries")
    return read / elapsed_s


async def _add_concurrently(redis: Redis, entries: int, clients: int, value: bytes) -> float:
    """XADD from `clients` tasks at once, each awaiting its own calls; entries/s."""
    shares = [
        entries // clients + (1 if index < entries % clients else 0) for index in range(clients)
    ]

    async def add(share: int) -> None:
        for _ in range(share):
            await redis.xadd(_XADD_STREAM, {"d": value})

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for share in shares:
            tasks.create_task(add(share))
    return entries / (time.perf_counter() - started)


async def _round_trips(redis: Redis, count: int, value: bytes) -> list[float]:
    """The time of each of `count` XADDs awaited one after the other, in ms."""
    times_ms: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        await redis.xadd(_ROUND_TRIP_STREAM, {"d": value})
        times_ms.append((time.perf_counter() - started) * 1000)
    return times_ms
