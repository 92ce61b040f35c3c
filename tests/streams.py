"""Typed reads of Redis streams for tests: entries as (id, data field) pairs."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis

from shared.streams import DATA_FIELD, WORKER_GROUP

Entry = tuple[str, bytes]


def _entries(raw: Any) -> list[Entry]:
    return [
        (entry_id.decode(), fields[DATA_FIELD.encode()])
        for entry_id, fields in cast("list[tuple[bytes, dict[bytes, bytes]]]", raw)
    ]


async def stream_entries(redis: Redis, stream: str) -> list[Entry]:
    """Every entry of `stream`, oldest first."""
    return _entries(await redis.xrange(stream))


async def read_group(redis: Redis, stream: str, consumer: str, count: int = 100) -> list[Entry]:
    """New entries for `consumer` of the worker group, as a worker reads them."""
    answer = cast(
        "list[tuple[bytes, Any]]",
        await redis.xreadgroup(WORKER_GROUP, consumer, {stream: ">"}, count=count),
    )
    return [entry for _stream, entries in answer for entry in _entries(entries)]


async def pending_count(redis: Redis, stream: str) -> int:
    """How many entries of `stream` the worker group has delivered and not acknowledged."""
    summary = await redis.xpending(stream, WORKER_GROUP)
    return int(summary["pending"])
