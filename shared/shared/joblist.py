"""Lists jobs newest first from the listing indexes, filtered, one cursor-delimited page at a time.

Every job with a record is in its queue's index and its owner's, scored by creation ms (the
Lua scripts keep them; the worker's sweeper drops jobs as their records expire). A page merges
the indexes of the queues asked for, newest first, reading records in pipelined chunks and
filtering them here. The cursor is the position, (creation ms, id), of the last job returned:
jobs created later never shift a page, and one that expired is simply not there.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec
from redis.asyncio import Redis

from shared.contracts.jobs import JobState, JobView
from shared.jobstore import record_view
from shared.streams import QueueKeys

# How many entries of each index one page may examine: a filter that matches rarely returns a
# short page with a cursor to go on from, rather than scanning a whole queue in one request.
SCAN_BUDGET = 5_000
_CHUNK = 200

Position = tuple[int, str]


class JobFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which jobs a listing returns; None matches anything."""

    queues: tuple[str, ...]
    owner: str | None = None
    state: JobState | None = None
    type: str | None = None
    # Creation time bounds, in epoch ms, inclusive.
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, job: JobView) -> bool:
        """Whether the job passes the filters an index cannot apply."""
        return (
            (self.state is None or job.state == self.state)
            and (self.type is None or job.type == self.type)
            and (self.owner is None or job.owner == self.owner)
        )


class JobPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of jobs, newest first, and the cursor of the next page (None: no more)."""

    items: tuple[JobView, ...]
    next: str | None = None


class CursorError(ValueError):
    """A cursor that no listing produced."""


def encode_cursor(position: Position) -> str:
    """An opaque cursor for the page after `position`."""
    created_ms, job_id = position
    return base64.urlsafe_b64encode(f"{created_ms}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor stands for, or CursorError."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_ms, job_id = text.split(":", 1)
        return int(created_ms), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise CursorError(f"not a cursor from this API: {cursor!r}") from exc


# Above every job: where a first page starts.
_TOP: Position = (2**62, "")


class _Lane:
    """One index, read newest first in chunks from below a fixed position."""

    def __init__(self, queue: str, owner: str | None, below: Position) -> None:
        self.keys = QueueKeys(queue)
        self.index = self.keys.owner_jobs(owner) if owner is not None else self.keys.jobs
        self.below = below
        self.offset = 0
        self.examined = 0
        self.exhausted = False
        # Matching jobs read but not yet placed on the page, newest first.
        self.buffer: list[tuple[Position, JobView]] = []
        # The oldest position read so far: everything newer in this index has been seen.
        self.last_seen = below

    @property
    def starved(self) -> bool:
        """Nothing in hand, yet more to read."""
        return not self.buffer and not self.exhausted


async def list_jobs(
    redis: Redis,
    query: JobFilter,
    *,
    limit: int,
    cursor: str | None = None,
    scan_budget: int = SCAN_BUDGET,
) -> JobPage:
    """The next page of jobs matching `query`, newest first."""
    if cursor:
        below = decode_cursor(cursor)
    elif query.until_ms is not None:
        below = (query.until_ms, "\U0010ffff")
    else:
        below = _TOP
    floor = query.since_ms if query.since_ms is not None else "-inf"
    lanes = [_Lane(queue, query.owner, below) for queue in query.queues]
    page: list[tuple[Position, JobView]] = []
    while len(page) < limit:
        for lane in lanes:
            while lane.starved and lane.examined < scan_budget:
                await _read_chunk(redis, lane, floor, query)
        if any(lane.starved for lane in lanes):
            return _cut_short(page, lanes, limit)
        ready = [lane for lane in lanes if lane.buffer]
        if not ready:
            return JobPage(items=tuple(job for _, job in page))
        newest = max(ready, key=lambda lane: lane.buffer[0][0])
        page.append(newest.buffer.pop(0))
    return JobPage(items=tuple(job for _, job in page), next=encode_cursor(page[-1][0]))


def _cut_short(page: list[tuple[Position, JobView]], lanes: list[_Lane], limit: int) -> JobPage:
    """The page when the scan budget ran out: every job newer than the frontier (the newest
    point some index has not read past) is known and placed; the cursor resumes there."""
    frontier = max(lane.last_seen for lane in lanes if lane.starved)
    known = [item for lane in lanes for item in lane.buffer if item[0] > frontier]
    page = (page + sorted(known, key=lambda item: item[0], reverse=True))[:limit]
    resume = page[-1][0] if len(page) == limit else frontier
    return JobPage(items=tuple(job for _, job in page), next=encode_cursor(resume))


async def _read_chunk(redis: Redis, lane: _Lane, floor: int | str, query: JobFilter) -> None:
    """Read the lane's next chunk of index entries and keep the jobs that match. Entries whose
    record has expired are dropped from the indexes."""
    entries: list[Any] = await redis.zrevrangebyscore(
        lane.index, lane.below[0], floor, start=lane.offset, num=_CHUNK, withscores=True
    )
    lane.offset += len(entries)
    lane.examined += len(entries)
    lane.exhausted = len(entries) < _CHUNK
    # Ties on the starting ms come first, in descending id order: skip those already returned.
    positions = [
        position
        for position in ((int(score), member.decode()) for member, score in entries)
        if position < lane.below
    ]
    if not positions:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for _, job_id in positions:
            pipe.hgetall(lane.keys.job(job_id))
        records: list[dict[bytes, bytes]] = await pipe.execute()
    expired = [job_id for (_, job_id), record in zip(positions, records, strict=True) if not record]
    if expired:
        # Found missing: drop it from both indexes, not only the one being read.
        await redis.zrem(lane.index, *expired)
        if lane.index != lane.keys.jobs:
            await redis.zrem(lane.keys.jobs, *expired)
    for position, record in zip(positions, records, strict=True):
        if record:
            job = record_view(record)
            if query.matches(job):
                lane.buffer.append((position, job))
    lane.last_seen = positions[-1]
