"""Durable notifications: completed and dead-lettered jobs stored for their owners, exactly once.

Every notifier reads the events streams through one consumer group, so each entry goes to one
instance, which stores its notification and then acknowledges it. An instance that dies with
entries in hand leaves them pending; another claims them once they have been idle long enough.
Storing is idempotent (the entry's offset is unique in the table), so an entry stored twice, by a
claim or a retry, still makes one row. While PostgreSQL is down an instance keeps its batch and
retries it; the entries behind it wait in Redis, so the backlog costs no memory here and survives
a restart, bounded by the events streams' retention. Pushing to clients is another loop and
never waits for any of this. On a Redis Cluster the streams are read per slot, as the source
reads them (notifier.source), with one batch stored at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from notifier.cancellation import stop_if_cancelled
from notifier.settings import NotifierSettings
from notifier.source import read_groups
from shared.connections import REDIS_FAILURES
from shared.contracts.codec import event_decoder
from shared.contracts.events import JobCompleted, JobDeadLettered, JobEvent
from shared.contracts.jobs import SYSTEM_OWNER
from shared.contracts.ws import event_offset
from shared.notifications import NewNotification, NotificationRepository
from shared.streams import DATA_FIELD, QueueKeys

logger = logging.getLogger(__name__)

NOTIFICATION_GROUP = "notifications"
# The column sizes of the notifications table.
_MAX_USER_ID = 200
_MAX_TITLE = 200
_DATA_FIELD = DATA_FIELD.encode()

Entries = list[tuple[bytes, dict[bytes, bytes]]]


def notification_of(event: JobEvent, source_event: str) -> NewNotification | None:
    """The notification a user should read about this event, if any; never the error detail."""
    if event.owner == SYSTEM_OWNER or not event.owner or len(event.owner) > _MAX_USER_ID:
        return None
    data: dict[str, Any] = {"job_id": event.job_id, "type": event.type, "queue": event.queue}
    if isinstance(event, JobCompleted):
        return NewNotification(
            source_event=source_event,
            user_id=event.owner,
            kind="job.completed",
            title=f"Job {event.type} completed"[:_MAX_TITLE],
            body=f"Your job {event.job_id} finished.",
            data={**data, "attempt": event.attempt},
        )
    if isinstance(event, JobDeadLettered):
        return NewNotification(
            source_event=source_event,
            user_id=event.owner,
            kind="job.dead_lettered",
            title=f"Job {event.type} failed"[:_MAX_TITLE],
            body=event.error.message,
            data={**data, "attempt": event.attempt},
        )
    return None


class WriterStats:
    """What the writer has done and whether it is stuck, for /readyz and metrics."""

    __slots__ = ("failing", "failing_since", "in_hand", "stored")

    def __init__(self) -> None:
        self.stored = 0
        # Entries read but not yet stored and acknowledged.
        self.in_hand = 0
        self.failing: str | None = None
        self.failing_since = 0.0


class NotificationWriter:
    """Reads the events streams in the notifications group and stores users' notifications."""

    def __init__(
        self,
        redis: Redis,
        repository: NotificationRepository,
        queues: Sequence[str],
        settings: NotifierSettings,
        consumer: str,
        *,
        cluster: bool = False,
    ) -> None:
        self._redis = redis
        self._repository = repository
        self._queue_of = {QueueKeys(queue).events.encode(): queue for queue in queues}
        self._groups = read_groups(self._queue_of, cluster=cluster)
        self._settings = settings
        self._consumer = consumer
        # One batch is stored and acknowledged at a time, so `stats` tells of that batch.
        self._storing = asyncio.Lock()
        self.stats = WriterStats()

    async def run(self) -> None:
        """Store notifications until cancelled; Redis and PostgreSQL failures are retried."""
        if len(self._groups) == 1:
            await self._follow(self._groups[0])
            return
        async with asyncio.TaskGroup() as tasks:
            for index, streams in enumerate(self._groups):
                tasks.create_task(self._follow(streams), name=f"notifier-writer-{index}")

    async def _follow(self, streams: tuple[bytes, ...]) -> None:
        delay_s = self._settings.retry_min_ms / 1000
        groups_ready = False
        next_claim = 0.0
        while True:
            try:
                if not groups_ready:
                    await self._create_groups(streams)
                    groups_ready = True
                batches: list[tuple[bytes, Entries]] = []
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self._settings.persist_claim_idle_ms / 2000
                    batches = await self._claim_stale(streams)
                if not batches:
                    batches = await self._read_new(streams)
            except REDIS_FAILURES as exc:
                stop_if_cancelled()
                logger.warning("reading events to store failed, retrying: %r", exc)
                await self._pause(delay_s)
                delay_s = min(delay_s * 2, self._settings.retry_max_ms / 1000)
                continue
            stop_if_cancelled()
            delay_s = self._settings.retry_min_ms / 1000
            for stream, entries in batches:
                self.stats.in_hand += len(entries)
                try:
                    async with self._storing:
                        await self._store(stream, entries)
                finally:
                    self.stats.in_hand -= len(entries)

    async def _read_new(self, streams: tuple[bytes, ...]) -> list[tuple[bytes, Entries]]:
        response = await self._redis.xreadgroup(
            NOTIFICATION_GROUP,
            self._consumer,
            dict.fromkeys(streams, ">"),
            count=self._settings.read_count,
            block=self._settings.read_block_ms,
        )
        return cast(list[tuple[bytes, Entries]], response or [])

    async def _create_groups(self, streams: tuple[bytes, ...]) -> None:
        for stream in streams:
            try:
                # From the start of the history: events written before any notifier ran count.
                await self._redis.xgroup_create(stream, NOTIFICATION_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _claim_stale(self, streams: tuple[bytes, ...]) -> list[tuple[bytes, Entries]]:
        """Entries another instance (or this one, before a reconnect) read but never stored."""
        claimed: list[tuple[bytes, Entries]] = []
        for stream in streams:
            response = await self._redis.xautoclaim(
                stream,
                NOTIFICATION_GROUP,
                self._consumer,
                min_idle_time=self._settings.persist_claim_idle_ms,
                count=self._settings.read_count,
            )
            entries = cast(Entries, response[1])
            if entries:
                claimed.append((stream, entries))
        return claimed

    async def _store(self, stream: bytes, entries: Entries) -> None:
        queue = self._queue_of[stream]
        notifications = [
            notification
            for entry_id, fields in entries
            if (notification := _notification_of_entry(queue, entry_id, fields)) is not None
        ]
        await self._insert_until_stored(notifications)
        ids = [entry_id for entry_id, _ in entries]
        delay_s = self._settings.retry_min_ms / 1000
        while True:
            try:
                await self._redis.xack(stream, NOTIFICATION_GROUP, *ids)
                break
            except REDIS_FAILURES as exc:
                stop_if_cancelled()
                # Unacknowledged, the entries would be claimed and stored again: harmless.
                logger.warning("acknowledging stored events failed, retrying: %r", exc)
                await self._pause(delay_s)
                delay_s = min(delay_s * 2, self._settings.retry_max_ms / 1000)

    async def _insert_until_stored(self, notifications: list[NewNotification]) -> None:
        delay_s = self._settings.retry_min_ms / 1000
        singly = False
        while True:
            try:
                async with asyncio.timeout(self._settings.persist_timeout_ms / 1000):
                    if singly:
                        await self._insert_each(notifications)
                    else:
                        self.stats.stored += await self._repository.add_once(notifications)
            except (DataError, IntegrityError):
                logger.exception("a notification of the batch cannot be stored; storing singly")
                singly = True
                continue
            except (SQLAlchemyError, OSError) as exc:
                stop_if_cancelled()
                if self.stats.failing is None:
                    self.stats.failing_since = time.monotonic()
                self.stats.failing = repr(exc)[:200]
                logger.warning(
                    "storing %d notifications failed, retrying in %.1fs: %r",
                    len(notifications),
                    delay_s,
                    exc,
                )
                await self._pause(delay_s)
                delay_s = min(delay_s * 2, self._settings.retry_max_ms / 1000)
                continue
            self.stats.failing = None
            return

    async def _insert_each(self, notifications: list[NewNotification]) -> None:
        """Store one by one, dropping (and logging) only those PostgreSQL refuses as invalid."""
        for notification in notifications:
            try:
                self.stats.stored += await self._repository.add_once([notification])
            except (DataError, IntegrityError):
                logger.exception("dropping notification of %s", notification.source_event)

    @staticmethod
    async def _pause(delay_s: float) -> None:
        # Jitter keeps instances from retrying in step.
        await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))  # noqa: S311


def _notification_of_entry(
    queue: str, entry_id: bytes, fields: dict[bytes, bytes]
) -> NewNotification | None:
    try:
        event = event_decoder.decode(fields[_DATA_FIELD])
    except (KeyError, msgspec.DecodeError):
        # The live source logs undecodable entries; here they are only acknowledged.
        return None
    return notification_of(event, event_offset(queue, entry_id.decode()))
