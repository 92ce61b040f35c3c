"""Worker heartbeats: each worker says every few seconds who it is and what it holds.

Each heartbeat is its own key, holding the latest `Heartbeat` as JSON with a TTL of a few
beats: the key exists exactly as long as its worker keeps beating, by Redis's clock, so a worker
killed without a word drops out one TTL after its last beat whatever the hosts' clocks say.
A sorted set of worker ids by last beat indexes the keys, so readers need no SCAN; writers prune
ids not seen for `FORGET_AFTER_MS`. Every command touches one key, so this works as is on a
Redis Cluster. A worker that stops cleanly removes both its key and its id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

from shared.streams import WORKERS_KEY, worker_heartbeat

log = logging.getLogger(__name__)

# Workers not heard of for this long are dropped from the index (their keys expired long ago);
# until then readers can still say when a worker that died was last seen.
FORGET_AFTER_MS = 3_600_000


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """What one worker process says about itself on each beat (times in Unix ms, its clock)."""

    # The worker's consumer name in the queues' groups: unique per process.
    id: str
    host: str
    pid: int
    version: str
    queues: tuple[str, ...]
    concurrency: int
    # Entries this worker holds: waiting for a slot, a resume or the rate limit, or running.
    in_hand: int
    # Of those, the ones whose handler runs now.
    running: int
    started_at_ms: int
    beat_at_ms: int
    # How long the heartbeat lives unless renewed; readers derive its age from what is left.
    ttl_ms: int
    last_job_started_at_ms: int | None = None
    last_job_finished_at_ms: int | None = None
    # Shutdown began: it finishes the jobs in hand and starts no new ones.
    stopping: bool = False


class SeenHeartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """A live heartbeat as read, with its age by Redis's clock."""

    heartbeat: Heartbeat
    age_ms: int


class LostWorker(msgspec.Struct, frozen=True, kw_only=True):
    """A worker still indexed whose heartbeat expired: it died without removing it."""

    id: str
    last_beat_at_ms: int


class Heartbeats(msgspec.Struct, frozen=True, kw_only=True):
    """Every worker heard of: the live ones, and those lost within `FORGET_AFTER_MS`."""

    live: tuple[SeenHeartbeat, ...]
    lost: tuple[LostWorker, ...]


_decoder = msgspec.json.Decoder(Heartbeat)


async def publish(redis: Redis, heartbeat: Heartbeat) -> None:
    """Write `heartbeat` (expiring after its `ttl_ms`) and index it, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(
            worker_heartbeat(heartbeat.id), msgspec.json.encode(heartbeat), px=heartbeat.ttl_ms
        )
        pipe.zadd(WORKERS_KEY, {heartbeat.id: heartbeat.beat_at_ms})
        pipe.zremrangebyscore(WORKERS_KEY, "-inf", heartbeat.beat_at_ms - FORGET_AFTER_MS)
        await pipe.execute()


async def withdraw(redis: Redis, worker_id: str) -> None:
    """Remove a worker's heartbeat and its index entry: it stopped on purpose."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(worker_heartbeat(worker_id))
        pipe.zrem(WORKERS_KEY, worker_id)
        await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def classify(ids: Sequence[tuple[str, float]], answers: Sequence[Any]) -> Heartbeats:
    """Sort indexed workers into live and lost from the GET and PTTL answers of each one."""
    live: list[SeenHeartbeat] = []
    lost: list[LostWorker] = []
    for (worker_id, score), (raw, ttl_left_ms) in zip(
        ids, zip(answers[::2], answers[1::2], strict=True), strict=True
    ):
        # PTTL is negative once the key is gone; a GET just before it expired may still answer.
        if raw is None or ttl_left_ms < 0:
            lost.append(LostWorker(id=worker_id, last_beat_at_ms=int(score)))
            continue
        try:
            heartbeat = _decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Heartbeats evolve additively; one that does not decode comes from a broken writer.
            log.warning(
                "ignoring a heartbeat that does not decode: %s", exc, extra={"worker_id": worker_id}
            )
            continue
        live.append(
            SeenHeartbeat(heartbeat=heartbeat, age_ms=max(heartbeat.ttl_ms - ttl_left_ms, 0))
        )
    return Heartbeats(live=tuple(live), lost=tuple(lost))


async def read_heartbeats(redis: Redis) -> Heartbeats:
    """Every indexed worker's heartbeat, in two round trips, oldest first."""
    # Pairs of member and score (lists under RESP3, tuples under RESP2).
    indexed = cast(
        "list[tuple[bytes | str, float]]",
        await redis.zrange(WORKERS_KEY, 0, -1, withscores=True),
    )
    ids = [(_text(member), float(score)) for member, score in indexed]
    if not ids:
        return Heartbeats(live=(), lost=())
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id, _score in ids:
            key = worker_heartbeat(worker_id)
            pipe.get(key)
            pipe.pttl(key)
        answers: list[Any] = await pipe.execute()
    return classify(ids, answers)
