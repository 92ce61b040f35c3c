"""The event source: reads every queue's events stream and hands each event to the hub."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any, Protocol, cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifier.cancellation import stop_if_cancelled
from notifier.settings import NotifierSettings
from shared.contracts.codec import event_decoder
from shared.contracts.events import JobEvent
from shared.contracts.ws import event_offset
from shared.streams import DATA_FIELD, QueueKeys

logger = logging.getLogger(__name__)

_DATA_FIELD = DATA_FIELD.encode()
# The id before every real entry: reading after it returns anything added to the stream.
_BEFORE_ALL = b"0-0"


class EventSink(Protocol):
    """What the source hands each decoded event to."""

    async def publish(self, event: JobEvent, offset: str) -> None:
        """Deliver one event; `offset` says where it sits in its queue's events stream."""


class EventSourceStats:
    """What the source has seen, for metrics."""

    __slots__ = ("entries_read", "entries_skipped")

    def __init__(self) -> None:
        self.entries_read = 0
        self.entries_skipped = 0


class RedisEventSource:
    """Follows the events streams of the given queues with XREAD BLOCK, from their ends at start.

    `following` says whether every entry added from now on will be read. The last entry id read
    is kept per stream, so a Redis outage or restart resumes where reading stopped instead of
    skipping to the new end.
    """

    def __init__(
        self,
        redis: Redis,
        queues: Sequence[str],
        sink: EventSink,
        settings: NotifierSettings,
    ) -> None:
        self._redis = redis
        self._queue_of = {QueueKeys(queue).events.encode(): queue for queue in queues}
        self._sink = sink
        self._settings = settings
        # Empty until each stream's end is resolved (there is always at least one queue).
        self._positions: dict[bytes, bytes] = {}
        self.stats = EventSourceStats()
        self.following = False

    async def run(self) -> None:
        """Read and deliver until cancelled, retrying with backoff while Redis is unreachable."""
        delay_s = self._settings.retry_min_ms / 1000
        while True:
            try:
                batches = await self._read()
            except (RedisError, OSError) as exc:
                stop_if_cancelled()
                self.following = False
                logger.warning("reading events failed, retrying in %.1fs: %r", delay_s, exc)
                # Jitter keeps many notifiers from reconnecting in step after a Redis restart.
                await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))  # noqa: S311
                delay_s = min(delay_s * 2, self._settings.retry_max_ms / 1000)
                continue
            stop_if_cancelled()
            delay_s = self._settings.retry_min_ms / 1000
            for stream, entries in batches:
                for entry_id, fields in entries:
                    await self._deliver(stream, entry_id, fields)

    async def _read(self) -> list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]:
        if not self._positions:
            self._positions = await self._ends()
        # From here on every entry added to a stream will be read: the notifier is live.
        self.following = True
        response = await self._redis.xread(
            self._positions,  # type: ignore[arg-type]
            count=self._settings.read_count,
            block=self._settings.read_block_ms,
        )
        return cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], response or [])

    async def _ends(self) -> dict[bytes, bytes]:
        # `$` would be re-evaluated on every XREAD, losing entries added to one stream while
        # another's batch is delivered; so each stream's end is resolved to a concrete id once.
        ends: dict[bytes, bytes] = {}
        for stream in self._queue_of:
            last = cast(list[tuple[bytes, Any]], await self._redis.xrevrange(stream, count=1))
            ends[stream] = last[0][0] if last else _BEFORE_ALL
        return ends

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
        except Exception:
            # One event must not stop the stream for everyone else.
            logger.exception("publishing event %s of queue %s failed", entry_id.decode(), queue)
