"""Repeatable jobs: which tick of a definition is due (pure), and the loop that enqueues it.

Every worker runs the loop. A tick is enqueued with the idempotency key `repeat:<name>:<tick>`,
and the job store's enqueue script checks and sets that key in the same atomic step that queues
the job: however many workers fire the same tick, and whether or not one crashed after
enqueueing, the tick becomes one job. The definition's mark (see shared.repeatables) then moves
to the tick, so the tick is never considered again once its idempotency key has expired.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence

import msgspec
from croniter import CroniterError, croniter
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.connections import REDIS_FAILURES
from shared.contracts.codec import encoder
from shared.contracts.jobs import JobEnvelope
from shared.contracts.repeatables import Repeatable
from shared.jobstore import JobStore
from shared.repeatables import RepeatableStore, check_repeatable

log = logging.getLogger(__name__)


def latest_tick(definition: Repeatable, now_ms: int) -> int | None:
    """The definition's last tick at or before `now_ms`, in ms; None when it has none."""
    if definition.every_s is not None:
        period_ms = definition.every_s * 1000
        return now_ms - now_ms % period_ms
    if definition.cron is None:
        return None
    try:
        # get_prev never returns its start time: start 1 ms later so a tick at `now_ms` counts.
        previous_s = croniter(definition.cron, (now_ms + 1) / 1000).get_prev(float)
    except CroniterError:
        return None
    return round(previous_s * 1000)


def due_tick(definition: Repeatable, last_tick_ms: int, now_ms: int) -> int | None:
    """The tick to fire: the latest one after `last_tick_ms` and at or before `now_ms`, or None.

    Only the latest counts, so ticks missed while no worker ran fire once, not once each.
    """
    tick = latest_tick(definition, now_ms)
    return tick if tick is not None and tick > last_tick_ms else None


def idempotency_key(name: str, tick_ms: int) -> str:
    """The idempotency key that makes one tick of a definition one job."""
    return f"repeat:{name}:{tick_ms}"


class RepeatScheduler:
    """Enqueues the due tick of every repeatable definition of its queues, once across workers."""

    def __init__(
        self,
        redis: Redis,
        store: JobStore,
        queues: Sequence[str],
        code_defined: Sequence[Repeatable] = (),
        *,
        clock: Callable[[], int] = now_ms,
        interval_s: float = 0.5,
    ) -> None:
        # A definition in code that cannot run is a programming error: refuse to start with it.
        for definition in code_defined:
            check_repeatable(definition, queues)
        self._definitions = RepeatableStore(redis)
        self._store = store
        self._queues = tuple(queues)
        self._code_defined = tuple(code_defined)
        self._published = False
        self._clock = clock
        self._interval_s = interval_s

    async def run(self) -> None:
        """Fire due ticks until cancelled; a Redis outage is logged and waited out, never fatal."""
        while True:
            try:
                await self.fire_due()
            except REDIS_FAILURES as exc:
                log.warning("could not fire repeatable jobs: %s", exc)
            await asyncio.sleep(self._interval_s)

    async def fire_due(self) -> int:
        """One round: publish the code's definitions once, enqueue every due tick; new jobs."""
        if not self._published:
            for definition in self._code_defined:
                await self._definitions.put(definition, self._clock())
            self._published = True
        now = self._clock()
        fired = 0
        for scheduled in await self._definitions.scheduled(self._queues):
            definition = scheduled.definition
            if scheduled.mark_ms is None:
                # Written without a mark (by hand, say): it starts counting from now.
                await self._definitions.advance(definition.queue, definition.name, now)
                continue
            tick = due_tick(definition, scheduled.mark_ms, now)
            if tick is None:
                continue
            if await self._enqueue(definition, tick, now):
                fired += 1
            await self._definitions.advance(definition.queue, definition.name, tick)
        return fired

    async def _enqueue(self, definition: Repeatable, tick_ms: int, now: int) -> bool:
        envelope = JobEnvelope(
            id=str(uuid.uuid4()),
            type=definition.type,
            queue=definition.queue,
            owner=definition.owner,
            max_attempts=definition.max_attempts,
            enqueued_at_ms=now,
            payload=msgspec.Raw(encoder.encode(definition.payload)),
        )
        job_id, created = await self._store.enqueue(
            envelope, idempotency_key=idempotency_key(definition.name, tick_ms)
        )
        if created:
            log.info(
                "repeatable %s on %s fired tick %d as job %s",
                definition.name,
                definition.queue,
                tick_ms,
                job_id,
            )
        return created
