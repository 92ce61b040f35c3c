"""Keeps every lane consumed: restarts a consumer that FastStream stopped for good.

FastStream stops a stream's subscriber for good when its consumer group vanishes (Redis came back
without its data: no AOF, or a flush) and expects the application to restart. Left alone, the
worker would stay alive and ready but consume nothing. The watch recreates the group at id 0 and
starts the subscriber again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from shared.connections import REDIS_FAILURES
from shared.jobstore import JobStore
from shared.streams import Lane

log = logging.getLogger(__name__)


class Consumer(Protocol):
    """What the watch needs of a FastStream subscriber."""

    running: bool

    async def start(self) -> None:
        """Start consuming."""


class ConsumerWatch:
    """Every `interval_s`, restarts the consumers that stopped, until shutdown begins."""

    def __init__(
        self,
        store: JobStore,
        consumers: Mapping[Lane, Consumer],
        *,
        interval_s: float,
        stopping: Callable[[], bool],
        parked: Callable[[Lane], bool] = lambda _lane: False,
    ) -> None:
        self._store = store
        self._consumers = dict(consumers)
        self._interval_s = interval_s
        self._stopping = stopping
        # Lanes of paused queues, stopped on purpose (worker.pause): not to be restarted here.
        self._parked = parked

    async def run(self) -> None:
        """Watch until cancelled; a stopped consumer is only expected while shutting down."""
        while True:
            await asyncio.sleep(self._interval_s)
            for lane, consumer in self._consumers.items():
                if self._stopping():
                    return
                if not consumer.running and not self._parked(lane):
                    await self._restart(lane, consumer)

    async def _restart(self, lane: Lane, consumer: Consumer) -> None:
        log.warning("restarting the stopped consumer of %s", lane.stream)
        try:
            await self._store.ensure_group(lane)
            await consumer.start()
        except REDIS_FAILURES as exc:
            log.warning("could not restart the consumer of %s: %s", lane.stream, exc)
