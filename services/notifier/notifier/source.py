"""The event source: reads every queue's events stream and hands each event to the hub.

On one Redis node a single XREAD follows every stream. A Redis Cluster refuses one command over
keys of several slots (CROSSSLOT), even when one node serves them all, so there the streams are
read in groups of one slot each (one per queue, as every key of a queue shares its hash tag),
one blocking XREAD per group at once. Each stream is read by one loop only, so the events of one
queue still reach the hub in order; events of different queues were never ordered.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

import msgspec
from redis.asyncio import Redis
from redis.crc import key_slot

from notifier.cancellation import stop_if_cancelled
from notifier.settings import NotifierSettings
from shared.connections import REDIS_FAILURES
from shared.contracts.codec import event_decoder
from shared.contracts.events import JobEvent
from shared.contracts.ws import event_offset
from shared.streams import DATA_FIELD, QueueKeys

logger = logging.getLogger(__name__)


_DATA_FIELD = DATA_FIELD.encode()
# The id before every real entry: reading after it returns anything added to the stream.
_BEFORE_ALL = b"0-0"

Batches = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


def read_groups(streams: Iterable[bytes], *, cluster: bool) -> list[tuple[bytes, ...]]:
    """The streams that one XREAD may read together: all of them, or on a cluster one slot's."""
    if not cluster:
        return [tuple(streams)]
    by_slot: dict[int, list[bytes]] = {}
    for stream in streams:
        by_slot.setdefault(key_slot(stream), []).append(stream)
    return [tuple(group) for group in by_slot.values()]


class EventSink(Protocol):
    """What the source hands each decoded event to."""

    async def publish(self, event: JobEvent, offset: str) -> None:
        """Deliver one event; `offset` says where it sits in its queue's events stream."""


# Upper bounds, in seconds, of the push latency histogram's buckets.
PUSH_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class EventSourceStats:
    """What the source has seen, for metrics."""

    __slots__ = ("entries_read", "entries_skipped", "push_latency_buckets", "push_latency_sum_s")

    def __init__(self) -> None:
        self.entries_read = 0
        self.entries_skipped = 0
        # Events pushed by how long after they were written: one count per bucket, +Inf last.
        self.push_latency_buckets = [0] * (len(PUSH_LATENCY_BUCKETS_S) + 1)
        self.push_latency_sum_s = 0.0

    def pushed(self, latency_s: float) -> None:
        """An event reached its rooms' connections `latency_s` after it was written."""
        self.push_latency_buckets[bisect.bisect_left(PUSH_LATENCY_BUCKETS_S, latency_s)] += 1
        self.push_latency_sum_s += latency_s


class RedisEventSource:
    """Follows the events streams of the given queues with XREAD BLOCK, from their ends at start.

    `following` says whether every entry added from now on will be read. The last entry id read
    is kept per stream, so a Redis outage or restart resumes where reading stopped instead of
    skipping to the new end. With `cluster`, the streams are read per slot (see the module).
    """

    def __init__(
        self,
        redis: Redis,
        queues: Sequence[str],
        sink: EventSink,
        settings: NotifierSettings,
        *,
        cluster: bool = False,
    ) -> None:
        self._redis = redis
        self._queue_of = {QueueKeys(queue).events.encode(): queue for queue in queues}
        self._groups = read_groups(self._queue_of, cluster=cluster)
        self._sink = sink
        self._settings = settings
        # A stream is missing until its end is resolved (there is always at least one queue).
        self._positions: dict[bytes, bytes] = {}
        # The groups whose every new entry will be read.
        self._following: set[int] = set()
        # One group's batch reaches the hub at a time: the hub keeps a single publisher, and
        # never sends two frames to one socket at once.
        self._delivering = asyncio.Lock()
        self.stats = EventSourceStats()

    @property
    def following(self) -> bool:
        """Whether every entry added to any of the streams from now on will be read."""
        return len(self._following) == len(self._groups)

    def position(self, queue: str) -> str | None:
        """The last entry of `queue`'s events stream handed to the sink, or where reading starts.

        Every entry after it will be handed on too. None until the stream's end is first found.
        """
        entry_id = self._positions.get(QueueKeys(queue).events.encode())
        return None if entry_id is None else entry_id.decode()

    async def run(self) -> None:
        """Read and deliver until cancelled, retrying with backoff while Redis is unreachable."""
        if len(self._groups) == 1:
            await self._follow(0)
            return
        async with asyncio.TaskGroup() as tasks:
            for index in range(len(self._groups)):
                tasks.create_task(self._follow(index), name=f"notifier-event-source-{index}")

    async def _follow(self, group: int) -> None:
        delay_s = self._settings.retry_min_ms / 1000
        while True:
            try:
                batches = await self._read(group)
            except REDIS_FAILURES as exc:
                stop_if_cancelled()
                self._following.discard(group)
                logger.warning("reading events failed, retrying in %.1fs: %r", delay_s, exc)
                # Jitter keeps many notifiers from reconnecting in step after a Redis restart.
                await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))  # noqa: S311
                delay_s = min(delay_s * 2, self._settings.retry_max_ms / 1000)
                continue
            stop_if_cancelled()
            delay_s = self._settings.retry_min_ms / 1000
            if not batches:
                continue
            async with self._delivering:
                for stream, entries in batches:
                    for entry_id, fields in entries:
                        await self._deliver(stream, entry_id, fields)

    async def _read(self, group: int) -> Batches:
        streams = self._groups[group]
        for stream in streams:
            if stream not in self._positions:
                self._positions[stream] = await self._end(stream)
        # From here on every entry added to these streams will be read: they are followed.
        self._following.add(group)
        response = await self._redis.xread(
            {stream: self._positions[stream] for stream in streams},
            count=self._settings.read_count,
            block=self._settings.read_block_ms,
        )
        return cast(Batches, response or [])

    async def _end(self, stream: bytes) -> bytes:
        # `$` would be re-evaluated on every XREAD, losing entries added to one stream while
        # another's batch is delivered; so each stream's end is resolved to a concrete id once.
        last = cast(list[tuple[bytes, Any]], await self._redis.xrevrange(stream, count=1))
        return last[0][0] if last else _BEFORE_ALL

    async def _deliver(self, stream: bytes, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        self._positions[stream] = entry_id
        self.stats.entries_read += 1
        queue = self._queue_of[stream]
        try:
            event = event_decoder.decode(fields[_DATA_FIELD])
        except (KeyError, msgspec.DecodeError) as exc:
            self.stats.entries_skipped += 1
            logger.error(
                "skipping undecodable event %s of queue %s: %r", entry_id.decode(), queue, exc
            )
            return
        try:
            await self._sink.publish(event, event_offset(queue, entry_id.decode()))
            # From the writer's clock to ours: hosts' clocks should agree within milliseconds.
            self.stats.pushed(max(time.time() - event.at_ms / 1000, 0.0))
        except Exception:
            # One event must not stop the stream for everyone else.
            logger.exception("publishing event %s of queue %s failed", entry_id.decode(), queue)
