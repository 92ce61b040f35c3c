"""Crash recovery: leases on the jobs in hand, and reclaiming the jobs of workers that died.

A running job's stream entry stays pending under its worker's consumer name. The lease keeper
renews those entries well within the visibility timeout; an entry idle for longer belongs to a
worker that died (kill -9, lost host), and the reclaimer of any live worker takes it over and
runs it again under a new attempt token, so the dead attempt can never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from shared.connections import REDIS_FAILURES
from shared.jobstore import JobStore, Reclaimed
from shared.streams import Lane
from worker.runner import JobRunner

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of every entry the runner holds, three times per visibility timeout."""

    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        lanes: Sequence[Lane],
        *,
        consumer: str,
        visibility_timeout_s: float,
    ) -> None:
        self._store = store
        self._runner = runner
        self._lanes = tuple(lanes)
        self._consumer = consumer
        self._interval_s = visibility_timeout_s / 3

    async def run(self) -> None:
        """Renew until cancelled; a Redis outage is logged, and the next round tries again."""
        while True:
            await asyncio.sleep(self._interval_s)
            for lane in self._lanes:
                try:
                    await self._store.renew(lane, self._consumer, self._runner.in_hand(lane))
                except REDIS_FAILURES as exc:
                    log.warning("could not renew leases: %s", exc)


class Reclaimer:
    """Takes over the entries of dead workers and runs them, at most `concurrency` at once."""

    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        lanes: Sequence[Lane],
        *,
        consumer: str,
        visibility_timeout_s: float,
        interval_s: float,
        concurrency: int,
        paused: Callable[[str], bool] = lambda _queue: False,
    ) -> None:
        self._store = store
        self._runner = runner
        self._lanes = tuple(lanes)
        self._consumer = consumer
        self._min_idle_ms = round(visibility_timeout_s * 1000)
        self._interval_s = interval_s
        self._concurrency = concurrency
        self._paused = paused
        self._running = 0
        self._stopping = asyncio.Event()

    def stop_intake(self) -> None:
        """Claim nothing more (shutdown has begun); jobs already claimed run to their end."""
        self._stopping.set()

    async def run(self) -> None:
        """Reclaim until cancelled or stopped; reclaimed jobs run in this loop's task group."""
        async with asyncio.TaskGroup() as running:
            while not self._stopping.is_set():
                for lane in self._lanes:
                    await self._reclaim(lane, running)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._interval_s)

    async def _reclaim(self, lane: Lane, running: asyncio.TaskGroup) -> None:
        # Claim only what there are free slots for, so that a claimed entry starts (and is
        # leased) at once instead of idling again in a local backlog.
        free = self._concurrency - self._running
        # A paused queue's jobs would only wait here, holding slots other queues' jobs need.
        if free <= 0 or self._paused(lane.queue):
            return
        try:
            taken = await self._store.reclaim(
                lane, self._consumer, min_idle_ms=self._min_idle_ms, count=free
            )
        except REDIS_FAILURES as exc:
            log.warning("could not reclaim: %s", exc)
            return
        for entry in taken:
            log.warning(
                "reclaimed a job from a worker that stopped renewing it",
                extra={"entry": entry.entry_id, "deliveries": entry.deliveries},
            )
            self._running += 1
            running.create_task(self._run(lane, entry))

    async def _run(self, lane: Lane, entry: Reclaimed) -> None:
        try:
            await self._runner.run(lane, entry.entry_id, entry.data, entry.deliveries)
        finally:
            self._running -= 1
