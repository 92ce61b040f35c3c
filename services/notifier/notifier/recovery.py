"""Catch-up: the events of a client's rooms that it missed since its offset, from the history.

The events streams are the history; the notifier keeps none of its own, so a client may catch up
on any instance and across restarts. A history that no longer reaches back to the offset (trimmed,
or reset) is reported, never papered over: the client then refetches over REST.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from typing import Any, cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.contracts.codec import event_decoder
from shared.contracts.events import JobEvent
from shared.streams import DATA_FIELD, QueueKeys, entry_order

logger = logging.getLogger(__name__)

_DATA_FIELD = DATA_FIELD.encode()


class HistoryGoneError(Exception):
    """Events after the offset are no longer all in the stream; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def addressed_to(event: JobEvent, rooms: Set[str]) -> bool:
    """Whether the event goes to any of the rooms."""
    return not rooms.isdisjoint(event.rooms)


class RedisHistory:
    """Reads what a client missed from a queue's events stream, page by page."""

    def __init__(self, redis: Redis, page_size: int, max_entries: int) -> None:
        self._redis = redis
        self._page_size = page_size
        self._max_entries = max_entries

    async def missed(self, queue: str, since: str, rooms: Set[str]) -> list[tuple[str, JobEvent]]:
        """Each event after entry `since` addressed to `rooms`, oldest first, with its entry id.

        Raises HistoryGoneError when some entry after `since` was trimmed, the stream is not the
        one the offset came from, or more than the recovery limit of entries would be read.
        """
        stream = QueueKeys(queue).events
        cursor, scanned = since, 0
        found: list[tuple[str, JobEvent]] = []
        while True:
            entries, info = await self._page(stream, cursor)
            if info is None:
                raise HistoryGoneError("the stream has no history")
            if cursor == since and entry_order(since) > entry_order(info["last-generated-id"]):
                raise HistoryGoneError("the offset is ahead of the stream: its history was reset")
            if _gap_after(cursor, info):
                raise HistoryGoneError("events after the offset were trimmed")
            scanned += len(entries)
            if scanned > self._max_entries:
                raise HistoryGoneError(f"more than {self._max_entries} events were missed")
            for raw_id, fields in entries:
                event = _decode(queue, raw_id, fields)
                if event is not None and addressed_to(event, rooms):
                    found.append((raw_id.decode(), event))
            if len(entries) < self._page_size:
                return found
            cursor = entries[-1][0].decode()

    async def _page(
        self, stream: str, after: str
    ) -> tuple[list[tuple[bytes, dict[bytes, bytes]]], dict[str, Any] | None]:
        # One key, hence one slot: the transaction is valid on a Redis Cluster too.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(stream, min=f"({after}", count=self._page_size)
            pipe.xinfo_stream(stream)
            try:
                entries, info = await pipe.execute()
            except ResponseError as exc:
                if "no such key" not in str(exc):
                    raise
                return [], None
        return cast(list[tuple[bytes, dict[bytes, bytes]]], entries), cast(dict[str, Any], info)


def _gap_after(cursor: str, info: dict[str, Any]) -> bool:
    """Whether an entry after `cursor` was removed, by what XINFO STREAM tells (Redis 7.0+).

    Read in one transaction with the page. An entry removed by XDEL raises the max deleted id;
    trimming only moves the first entry. The first entry being after the cursor means the
    cursor's entry was trimmed and maybe some after it: that is taken as a gap, at worst a
    resync too many and never an event lost.
    """
    position = entry_order(cursor)
    if entry_order(info["max-deleted-entry-id"]) > position:
        return True
    if info["length"] == 0:
        return entry_order(info["last-generated-id"]) > position
    return entry_order(info["recorded-first-entry-id"]) > position


def _decode(queue: str, entry_id: bytes, fields: dict[bytes, bytes]) -> JobEvent | None:
    try:
        return event_decoder.decode(fields[_DATA_FIELD])
    except (KeyError, msgspec.DecodeError) as exc:
        # The live source logs it as an error already; a replay says so quietly.
        logger.debug("skipping undecodable event %s of %s: %r", entry_id.decode(), queue, exc)
        return None
