"""Catching a connection up: what it missed in some of its rooms, then its live events, each once.

Used at the handshake, for the rooms the connection is opened with, and by a `Join` with `since`,
for the one entity room joined. Either way the connection holds its live pushes first, joins the
rooms with no await in between, sends the history, then the held pushes that the history did not
already hold: so every event after the offsets arrives once and in order per room.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Set
from typing import Protocol

from notifier.connection import SocketConnection
from notifier.coverage import Coverage, EntryOrder
from notifier.frames import EventFrames
from notifier.recovery import HistoryGoneError, RedisHistory
from shared.connections import REDIS_FAILURES
from shared.contracts.codec import encoder
from shared.contracts.ws import CLOSE_TRY_AGAIN, OffsetError, Resync, event_offset, parse_since
from shared.streams import entry_order

logger = logging.getLogger(__name__)


class LivePositions(Protocol):
    """Where the live event source is in each queue's events stream."""

    def position(self, queue: str) -> str | None:
        """The last entry id handed to the rooms, or where reading starts; None if not known yet."""


class CatchUp:
    """Reads offsets, and sends a connection the events of its rooms it missed since them."""

    def __init__(
        self, history: RedisHistory, positions: LivePositions, queues: Collection[str]
    ) -> None:
        self._history = history
        self._positions = positions
        self._queues = queues

    def since(self, raw: str | None) -> dict[str, str]:
        """The offsets of a `since` parameter, by queue; empty if none. OffsetError if bad."""
        if not raw:
            return {}
        since = parse_since(raw)
        unknown = sorted(set(since) - set(self._queues))
        if unknown:
            raise OffsetError(f"unknown queue {unknown[0][:64]!r}")
        return since

    def live(self) -> dict[str, EntryOrder | None]:
        """Per queue, the entry after which every event reaches the rooms' connections live.

        Taken with no await before joining the rooms, it is where their coverage starts.
        """
        positions = {queue: self._positions.position(queue) for queue in self._queues}
        return {
            queue: None if entry_id is None else entry_order(entry_id)
            for queue, entry_id in positions.items()
        }

    async def send_missed(  # noqa: PLR0917 - one catch-up's parts
        self,
        connection: SocketConnection,
        since: Mapping[str, str],
        rooms: Set[str],
        live: Mapping[str, EntryOrder | None],
        had: Coverage,
        room: str | None = None,
    ) -> bool:
        """Send what the connection missed in `rooms` since the offsets, then its held pushes.

        The connection holds its live pushes if `since` names any queue, and joined `rooms`
        right after `live` was taken. Events it `had` through its other rooms are skipped, and
        then `rooms` are added to what it has. `room` names the entity room a `Resync` is
        about, if it is one. False if the connection ends.
        """
        has_after = dict(live)
        sent: set[str] = set()
        for queue, entry_id in since.items():
            try:
                missed = await self._history.missed(queue, entry_id, rooms)
            except HistoryGoneError as exc:
                # The client refetches the queue's state: it has what came after `live` only.
                resync = Resync(queue=queue, reason=exc.reason, room=room)
                if not await connection.send(encoder.encode(resync).decode()):
                    return False
                continue
            except REDIS_FAILURES as exc:
                logger.warning("catch-up of %s failed: %r", connection.identity.sub, exc)
                connection.close_with = (CLOSE_TRY_AGAIN, "catch-up failed, try again")
                return False
            for missed_id, event in missed:
                if had.has(queue, entry_order(missed_id), event):
                    continue
                offset = event_offset(queue, missed_id)
                frames = EventFrames(event, offset, recovered=True)
                frame = frames.for_admin() if connection.sees_error_detail else frames.for_user()
                if not await connection.send(frame.text):
                    return False
                sent.add(offset)
            has_after[queue] = entry_order(entry_id)
        if not await connection.release_live_events(sent):
            return False
        for joined in rooms:
            had.add(joined, has_after)
        return True
