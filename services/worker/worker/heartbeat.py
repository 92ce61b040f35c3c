"""The worker's heartbeat: every few seconds, who it is and what it holds, for the health service.

The loop runs on the same event loop as the consumers, so a worker whose loop is stuck stops
beating too. On a clean stop it removes its heartbeat; a killed worker's heartbeat expires.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from importlib.metadata import version as package_version
from typing import Protocol

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.connections import REDIS_FAILURES
from shared.contracts.jobs import JobEnvelope
from shared.heartbeats import Heartbeat, publish, withdraw
from shared.streams import Lane, lanes_of
from worker.metrics import JobMetrics
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

INTERVAL_S = 2.0
# A heartbeat outlives a few missed beats (a slow Redis, a long GC pause) before it expires.
TTL_BEATS = 3


class JobActivity(JobMetrics):
    """The job metrics, which see every attempt start and finish, also noting when and how many
    run now: the heartbeat reports them."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], int] = now_ms) -> None:
        super().__init__(registry)
        self._clock = clock
        self.running = 0
        self.last_started_at_ms: int | None = None
        self.last_finished_at_ms: int | None = None

    def started(self, envelope: JobEnvelope, now_ms: int) -> None:
        """An attempt started."""
        super().started(envelope, now_ms)
        self.running += 1
        self.last_started_at_ms = now_ms

    def finished(self, envelope: JobEnvelope, duration_s: float, *, ok: bool) -> None:
        """An attempt's handler returned or raised."""
        super().finished(envelope, duration_s, ok=ok)
        self.running = max(self.running - 1, 0)
        self.last_finished_at_ms = self._clock()


class HeldEntries(Protocol):
    """What the heartbeat needs of the runner: the entries it holds per lane."""

    def in_hand(self, lane: Lane) -> list[str]:
        """The entries of `lane` held now."""


class HeartbeatLoop:
    """Publishes this worker's heartbeat every `interval_s` until cancelled, then removes it."""

    def __init__(
        self,
        redis: Redis,
        runner: HeldEntries,
        activity: JobActivity,
        worker: WorkerSettings,
        queues: Sequence[str],
        *,
        stopping: Callable[[], bool],
        interval_s: float = INTERVAL_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._redis = redis
        self._runner = runner
        self._activity = activity
        self._worker = worker
        self._queues = tuple(queues)
        self._lanes = lanes_of(queues)
        self._stopping = stopping
        self._interval_s = interval_s
        self._clock = clock
        self._host = socket.gethostname()
        self._version = package_version("conduit-worker")
        self._started_at_ms = clock()

    def heartbeat(self) -> Heartbeat:
        """This worker as it is now."""
        return Heartbeat(
            id=self._worker.consumer,
            host=self._host,
            pid=os.getpid(),
            version=self._version,
            queues=self._queues,
            concurrency=self._worker.concurrency,
            in_hand=sum(len(self._runner.in_hand(lane)) for lane in self._lanes),
            running=self._activity.running,
            started_at_ms=self._started_at_ms,
            beat_at_ms=self._clock(),
            ttl_ms=int(self._interval_s * TTL_BEATS * 1000),
            last_job_started_at_ms=self._activity.last_started_at_ms,
            last_job_finished_at_ms=self._activity.last_finished_at_ms,
            stopping=self._stopping(),
        )

    async def beat(self) -> bool:
        """Publish once; False, with a warning, when Redis could not be written."""
        try:
            # Bounded: a beat that hangs longer than an interval is a missed beat anyway.
            async with asyncio.timeout(self._interval_s):
                await publish(self._redis, self.heartbeat())
        except (*REDIS_FAILURES, TimeoutError) as exc:
            log.warning("could not publish the heartbeat: %r", exc)
            return False
        return True

    async def run(self) -> None:
        """Beat now and every `interval_s`; once cancelled, remove the heartbeat."""
        try:
            while True:
                await self.beat()
                await asyncio.sleep(self._interval_s)
        finally:
            await self._withdraw()

    async def _withdraw(self) -> None:
        try:
            async with asyncio.timeout(self._interval_s):
                await withdraw(self._redis, self._worker.consumer)
        except (*REDIS_FAILURES, TimeoutError) as exc:
            log.warning("could not remove the heartbeat; it expires by itself: %r", exc)
