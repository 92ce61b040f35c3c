"""The loop that keeps reading every queue's snapshot (shared.queuestats) for the gauges."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

from health.probes import describe
from shared.queuestats import QueueSnapshot, read_snapshot

log = logging.getLogger(__name__)


class SnapshotSink(Protocol):
    """Where the poller puts what it read, and reports that a read failed."""

    def update(self, snapshot: QueueSnapshot) -> None:
        """Replace the previous snapshot."""

    def failed(self) -> None:
        """A read failed; the previous snapshot stands."""


class SnapshotSinks:
    """One read, several sinks: the gauges and the warn checks judge the same snapshot."""

    def __init__(self, *sinks: SnapshotSink) -> None:
        self._sinks = sinks

    def update(self, snapshot: QueueSnapshot) -> None:
        """Hand `snapshot` to every sink."""
        for sink in self._sinks:
            sink.update(snapshot)

    def failed(self) -> None:
        """Tell every sink that a read failed."""
        for sink in self._sinks:
            sink.failed()


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
