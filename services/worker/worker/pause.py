"""Paused queues: their jobs do not start here, and their lanes are not read while paused.

Two parts, because a stream entry once read cannot be unread:

- The gate, in front of every start (consumed and reclaimed jobs alike), holds a job of a paused
  queue before it takes a slot, so no job of it starts once this worker has seen the pause.
  Jobs already running finish.
- The watch reads the pause flags every `interval_s`. It stops the consumer of a paused lane as
  soon as none of the lane's jobs runs here (stopping FastStream's subscriber cancels handlers
  that outlast the grace period, so it never stops one with a job running), gives the entries it
  read meanwhile back to the group, and starts the consumer again on resume. Until then the
  lane's jobs stay in its stream, counted as waiting, for any worker to take after the resume.
  (A worker that starts while a queue is paused reads a few batches of it before the watch
  stops the consumer: FastStream starts every subscriber. Those go back to the group too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from redis.asyncio import Redis

from shared.connections import REDIS_FAILURES
from shared.jobstore import JobStore
from shared.queuestats import paused_queues
from shared.streams import Lane
from worker.admission import Admission
from worker.watch import Consumer

log = logging.getLogger(__name__)


class PauseGate:
    """Holds the jobs of paused queues before they start; pure state, fed by the PauseWatch."""

    def __init__(self) -> None:
        self._paused: frozenset[str] = frozenset()
        # Lanes whose consumer is stopped on purpose: their jobs go back to the group unstarted.
        self._parked: set[Lane] = set()
        self._closed = False
        # Jobs per lane past the gate: waiting for a slot or running.
        self._passed: Counter[Lane] = Counter()
        self._changed = asyncio.Event()

    def paused(self, queue: str) -> bool:
        """Whether `queue` was paused when this worker last looked."""
        return queue in self._paused

    def parked(self, lane: Lane) -> bool:
        """Whether `lane`'s consumer is stopped because its queue is paused."""
        return lane in self._parked

    def passed(self, lane: Lane) -> int:
        """How many jobs of `lane` are past the gate: waiting for a slot, or running."""
        return self._passed[lane]

    def update(self, paused: frozenset[str]) -> None:
        """The queues paused now."""
        if paused != self._paused:
            self._paused = paused
            self._wake()

    def park(self, lane: Lane) -> None:
        """`lane`'s consumer is stopped: its jobs waiting at the gate go back unstarted."""
        self._parked.add(lane)
        self._wake()

    def unpark(self, lane: Lane) -> None:
        """`lane`'s consumer runs again."""
        self._parked.discard(lane)

    def close(self) -> None:
        """Shutdown began: jobs waiting for a resume go back unstarted, so none delays the exit."""
        self._closed = True
        self._wake()

    @contextlib.asynccontextmanager
    async def slot(self, lane: Lane, admission: Admission | None) -> AsyncIterator[bool]:
        """Yields True, holding an admission slot, once `lane`'s queue is not paused; False when
        the job is to go back to the group unstarted instead (its lane is parked, or shutdown)."""
        while await self._until_runnable(lane):
            self._passed[lane] += 1
            try:
                async with contextlib.AsyncExitStack() as holding:
                    if admission is not None:
                        await holding.enter_async_context(admission.slot(lane))
                    # Paused while it waited for a slot: the slot goes to another job meanwhile.
                    if not self.paused(lane.queue):
                        yield True
                        return
            finally:
                self._passed[lane] -= 1
        yield False

    async def _until_runnable(self, lane: Lane) -> bool:
        while True:
            if not self.paused(lane.queue):
                return True
            if self._closed or lane in self._parked:
                return False
            changed = self._changed
            await changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class Switch(Consumer, Protocol):
    """What the pause watch needs of a FastStream subscriber: the consumer watch's, and stop."""

    async def stop(self) -> None:
        """Stop consuming, waiting for the handlers in flight."""


class PauseWatch:
    """Every `interval_s`, reads which queues are paused, and parks or restarts their lanes."""

    def __init__(
        self,
        redis: Redis,
        store: JobStore,
        gate: PauseGate,
        consumers: Mapping[Lane, Switch],
        *,
        consumer: str,
        interval_s: float,
        stopping: Callable[[], bool],
    ) -> None:
        self._redis = redis
        self._store = store
        self._gate = gate
        self._consumers = dict(consumers)
        self._consumer = consumer
        self._interval_s = interval_s
        self._stopping = stopping
        self._queues = tuple(dict.fromkeys(lane.queue for lane in self._consumers))
        self._checking = asyncio.Lock()

    async def run(self) -> None:
        """Check every `interval_s` until cancelled or shutdown begins (the composition root
        checks once before the consumers start)."""
        while True:
            await asyncio.sleep(self._interval_s)
            if self._stopping():
                return
            await self.check()

    async def check(self) -> None:
        """Read the pause flags now and bring every lane's consumer in line with them."""
        async with self._checking:
            try:
                paused = await paused_queues(self._redis, self._queues)
            except REDIS_FAILURES as exc:
                # A worker that cannot read Redis cannot start jobs either: the last view stands.
                log.warning("could not read which queues are paused: %s", exc)
                return
            self._gate.update(paused)
            for lane, switch in self._consumers.items():
                if self._stopping():
                    return
                if self._gate.paused(lane.queue):
                    await self._hold(lane, switch)
                elif self._gate.parked(lane):
                    await self._resume(lane, switch)

    async def _hold(self, lane: Lane, switch: Switch) -> None:
        # Stopped only once nothing of the lane runs here: the stop then waits for no job and
        # cancels none. Until then, the jobs it reads wait at the gate (a few batches at most).
        if switch.running and not self._gate.passed(lane):
            await self._park(lane, switch)

    async def _park(self, lane: Lane, switch: Switch) -> None:
        # Parked first: the consumer watch leaves it stopped, and jobs at the gate go back.
        self._gate.park(lane)
        log.info("queue paused: no longer reading %s", lane.stream)
        try:
            await switch.stop()
            # What it read and did not start: claimable at once after the resume, and not
            # counted as a delivery that killed its worker.
            handed = await self._store.hand_back(lane, self._consumer)
        except REDIS_FAILURES as exc:
            log.warning("could not hand back the entries read from %s: %s", lane.stream, exc)
            return
        if handed:
            log.info("handed back unstarted jobs", extra={"stream": lane.stream, "count": handed})

    async def _resume(self, lane: Lane, switch: Switch) -> None:
        log.info("queue resumed: reading %s again", lane.stream)
        try:
            await self._store.ensure_group(lane)
            await switch.start()
        except REDIS_FAILURES as exc:
            # Unparked all the same: the consumer watch restarts a stopped consumer.
            log.warning("could not restart the consumer of %s: %s", lane.stream, exc)
        finally:
            self._gate.unpark(lane)
