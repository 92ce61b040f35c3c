"""Which events a connection has had, room by room: so that a catch-up sends none twice. No I/O.

An event goes to every room it names, and a connection gets it once however many of its rooms it
names. A room joined later with offsets must then not replay an event the connection already had
through a room it was in before: one that was in that room's catch-up, or pushed live after it.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.contracts.events import JobEvent

# A stream entry id as `shared.streams.entry_order` gives it: it sorts as Redis orders the entries.
EntryOrder = tuple[int, int]


class Coverage:
    """Per room of one connection and per queue: the entry after which it has every event.

    A room joined with an offset for a queue has every event after it: from the history, then
    live. For any other queue it has every event after the event source's position at the join,
    the last entry handed to the rooms by then; None where the source had no position yet (still
    looking for the stream's end), and then no event counts as had through that room.
    """

    __slots__ = ("_rooms",)

    def __init__(self) -> None:
        self._rooms: dict[str, Mapping[str, EntryOrder | None]] = {}

    def add(self, room: str, has_after: Mapping[str, EntryOrder | None]) -> None:
        """The connection has every event of `room` after these entries, per queue."""
        self._rooms[room] = has_after

    def remove(self, room: str) -> None:
        """The connection left `room`: the events it got through it are forgotten.

        At worst an event it got through the room is sent again by a later catch-up, marked
        `recovered`, with the offset it came with; none is ever skipped.
        """
        self._rooms.pop(room, None)

    def has(self, queue: str, entry: EntryOrder, event: JobEvent) -> bool:
        """Whether the connection already had the event at `entry` of `queue`."""
        for room in event.rooms:
            has_after = self._rooms.get(room)
            if has_after is None:
                continue
            after = has_after.get(queue)
            if after is not None and entry > after:
                return True
        return False
