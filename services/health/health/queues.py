"""What each queue holds, read from Redis in one round trip, and the loop that keeps reading it.

Per lane (a queue's stream of one priority): its length, the worker group's lag and pending
entries, and the age of the oldest pending entry; per queue: delayed jobs and dead letters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from health.probes import describe
from shared.contracts.jobs import Priority
from shared.streams import WORKER_GROUP, Lane, QueueKeys, lanes_of

log = logging.getLogger(__name__)


class LaneStats(msgspec.Struct, frozen=True, kw_only=True):
    """One lane's stream as the worker group sees it."""

    queue: str
    priority: Priority
    depth: int
    lag: int
    pending: int
    oldest_pending_age_s: float


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    """A queue's jobs that are not on a stream: parked for later, or dead."""

    queue: str
    delayed: int
    dead_letters: int


class QueueSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Every lane and queue, read at one moment."""

    lanes: tuple[LaneStats, ...]
    queues: tuple[QueueStats, ...]


def entry_ms(entry_id: bytes | str) -> int:
    """The millisecond timestamp of a stream entry id (`<ms>-<seq>`)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _group(groups: Any) -> dict[str, Any] | None:
    """The worker group's entry in an XINFO GROUPS answer, if the group exists."""
    if isinstance(groups, ResponseError):
        return None
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == WORKER_GROUP:
            return dict(group)
    return None


def lane_stats(lane: Lane, depth: int, groups: Any, pending: Any, now_ms: int) -> LaneStats:
    """A lane's figures from its XLEN, XINFO GROUPS and XPENDING answers (errors: absent keys)."""
    group = _group(groups)
    if group is None:
        # The first worker creates the group at id 0 and reads the whole stream: all of it is lag.
        return LaneStats(
            queue=lane.queue,
            priority=lane.priority,
            depth=depth,
            lag=depth,
            pending=0,
            oldest_pending_age_s=0.0,
        )
    in_hand = int(group["pending"])
    lag = group.get("lag")
    if lag is None:
        # Redis cannot always count the lag after deletions; Conduit deletes every entry it acks,
        # so what the stream holds beyond the pending entries is exactly what no worker has read.
        lag = max(depth - in_hand, 0)
    oldest_age_s = 0.0
    if in_hand and not isinstance(pending, ResponseError) and pending.get("min"):
        oldest_age_s = max(now_ms - entry_ms(pending["min"]), 0) / 1000
    return LaneStats(
        queue=lane.queue,
        priority=lane.priority,
        depth=depth,
        lag=int(lag),
        pending=in_hand,
        oldest_pending_age_s=oldest_age_s,
    )


def _raise_unexpected(answers: Iterable[Any]) -> None:
    """Missing streams and groups answer with ResponseErrors we expect; anything else is real."""
    for answer in answers:
        if isinstance(answer, Exception) and not (
            isinstance(answer, ResponseError)
            and ("no such key" in str(answer) or "NOGROUP" in str(answer))
        ):
            raise answer


def _triples(answers: Sequence[Any]) -> Iterable[tuple[Any, Any, Any]]:
    return zip(answers[::3], answers[1::3], answers[2::3], strict=True)


async def read_snapshot(redis: Redis, queues: Sequence[str]) -> QueueSnapshot:
    """Read every lane and queue in one pipeline; ages use Redis's clock, as entry ids do."""
    lanes = lanes_of(queues)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        for lane in lanes:
            pipe.xlen(lane.stream)
            pipe.xinfo_groups(lane.stream)
            pipe.xpending(lane.stream, WORKER_GROUP)
        for queue in queues:
            keys = QueueKeys(queue)
            pipe.zcard(keys.delayed)
            pipe.xlen(keys.dead)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
    _raise_unexpected(answers)
    seconds, microseconds = answers[0]
    now_ms = int(seconds) * 1000 + int(microseconds) // 1000
    lane_answers = answers[1 : 1 + 3 * len(lanes)]
    queue_answers = answers[1 + 3 * len(lanes) :]
    return QueueSnapshot(
        lanes=tuple(
            lane_stats(lane, int(depth), groups, pending, now_ms)
            for lane, (depth, groups, pending) in zip(lanes, _triples(lane_answers), strict=True)
        ),
        queues=tuple(
            QueueStats(queue=queue, delayed=int(delayed), dead_letters=int(dead))
            for queue, (delayed, dead) in zip(
                queues, zip(queue_answers[::2], queue_answers[1::2], strict=True), strict=True
            )
        ),
    )


class SnapshotSink(Protocol):
    """Where the poller puts what it read, and reports that a read failed."""

    def update(self, snapshot: QueueSnapshot) -> None:
        """Replace the previous snapshot."""

    def failed(self) -> None:
        """A read failed; the previous snapshot stands."""


class QueuePoller:
    """Every `interval_s`, reads a snapshot into `sink`; a failed read keeps the last one."""

    def __init__(
        self, redis: Redis, queues: Sequence[str], sink: SnapshotSink, *, interval_s: float
    ) -> None:
        self._redis = redis
        self._queues = tuple(queues)
        self._sink = sink
        self._interval_s = interval_s

    async def poll(self) -> bool:
        """Read once into the sink; False, with a warning, when Redis could not be read."""
        try:
            snapshot = await read_snapshot(self._redis, self._queues)
        # Whatever goes wrong, the service stays up and the gauges keep their last values.
        except Exception as exc:
            log.warning("could not read the queue gauges from Redis: %s", describe(exc))
            self._sink.failed()
            return False
        self._sink.update(snapshot)
        return True

    async def run(self) -> None:
        """Poll every `interval_s` until cancelled (the first time after one interval)."""
        while True:
            await asyncio.sleep(self._interval_s)
            await self.poll()
