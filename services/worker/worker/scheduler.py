"""Moves delayed jobs (retries waiting for their backoff) onto their stream when due, and sweeps
finished jobs out of the listing indexes as their records expire."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from shared.clock import now_ms
from shared.connections import REDIS_FAILURES
from shared.jobstore import JobStore

log = logging.getLogger(__name__)
# Sweeping is bookkeeping, not latency: once every this many promotion rounds is plenty.
SWEEP_EVERY = 50


class DuePromoter:
    """Promotes due jobs and sweeps the indexes of every queue; every worker runs one, each script
    is atomic."""

    def __init__(self, store: JobStore, queues: Sequence[str], interval_s: float) -> None:
        self._store = store
        self._queues = tuple(queues)
        self._interval_s = interval_s

    async def run(self) -> None:
        """Promote until cancelled; a Redis outage is logged and waited out, never fatal."""
        rounds = 0
        while True:
            try:
                moved = 0
                for queue in self._queues:
                    moved += await self._store.promote_due(queue, now_ms())
                if rounds % SWEEP_EVERY == 0:
                    for queue in self._queues:
                        await self._store.sweep(queue, now_ms())
            except REDIS_FAILURES as exc:
                log.warning("could not promote due jobs: %s", exc)
                moved = 0
            rounds += 1
            # A full batch means more may be due: go again at once.
            if moved < 500:
                await asyncio.sleep(self._interval_s)
