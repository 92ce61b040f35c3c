"""Runs the jobs the consumers read, as tasks of the worker's own, so that no job holds up a lane.

Each lane's consumer reads a batch of entries at a time (one FastStream dispatch per batch rather
than per job: per job, FastStream's dispatch cost more CPU than the job's whole Redis work) and
hands it to the pool. The consumer reads its next batch as soon as the pool has room, while the
jobs of the last one still run, so a slow job does not stop its lane. The jobs that arrive
together also reach the job store together, which sends their starts and completions in batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from shared.streams import Lane
from worker.runner import JobRunner

log = logging.getLogger(__name__)


class JobPool:
    """Runs handed-over entries through the runner, taking more while fewer than `capacity`
    are in hand (running, or waiting for a slot, a resume or the rate limit)."""

    def __init__(self, runner: JobRunner, capacity: int) -> None:
        self._runner = runner
        self._capacity = capacity
        self._in_hand = 0
        self._room = asyncio.Event()
        self._room.set()
        self._closing = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self._running = asyncio.Event()

    async def run(self) -> None:
        """Run the jobs handed over until `close`, then until the last of them has ended."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self._running.set()
            await self._closing.wait()

    def close(self) -> None:
        """Take no more jobs (shutdown has begun); those in hand run to their end."""
        self._closing.set()

    async def take(self, lane: Lane, entries: Iterable[tuple[str, bytes]]) -> None:
        """Start running these `(entry id, body)` entries of `lane`; return once there is room
        for another batch."""
        await self._running.wait()
        tasks = self._tasks
        if tasks is None:
            raise RuntimeError("the pool runs no task group")
        for entry_id, body in entries:
            self._in_hand += 1
            tasks.create_task(self._run(lane, entry_id, body))
        if self._in_hand >= self._capacity:
            self._room.clear()
        await self._room.wait()

    async def _run(self, lane: Lane, entry_id: str, body: bytes) -> None:
        try:
            await self._runner.run(lane, entry_id, body)
        except Exception:  # Redis out of reach: the entry stays pending and is reclaimed later
            log.exception("a job's run failed; its entry is left to be reclaimed")
        finally:
            self._in_hand -= 1
            if self._in_hand < self._capacity:
                self._room.set()
