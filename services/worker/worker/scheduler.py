"""Moves delayed jobs (retries waiting for their backoff) onto their stream when due."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis.exceptions import RedisError

from shared.clock import now_ms
from shared.jobstore import JobStore

log = logging.getLogger(__name__)


class DuePromoter:
    """A loop that promotes due jobs of every queue; every worker runs one, the script is atomic."""

    def __init__(self, store: JobStore, queues: Sequence[str], interval_s: float) -> None:
        self._store = store
        self._queues = tuple(queues)
        self._interval_s = interval_s

    async def run(self) -> None:
        """Promote until cancelled; a Redis outage is logged and waited out, never fatal."""
        while True:
            try:
                moved = 0
                for queue in self._queues:
                    moved += await self._store.promote_due(queue, now_ms())
            except (RedisError, OSError) as exc:
                log.warning("could not promote due jobs: %s", exc)
                moved = 0
            # A full batch means more may be due: go again at once.
            if moved < 500:
                await asyncio.sleep(self._interval_s)
