"""The hub: which connection is in which room, and fanning one event out to them. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from opentelemetry.trace import SpanKind

from notifier.frames import EventFrames, TextFrame
from shared.contracts.events import JobEvent
from shared.telemetry import trace_context, tracer


class Connection(Protocol):
    """One client as the hub sees it."""

    @property
    def sees_error_detail(self) -> bool:
        """Whether this client may see an error's detail (admins)."""

    async def push(self, frame: TextFrame, offset: str) -> bool:
        """Send the frame of the event at `offset` without waiting on a slow client.

        False means drop this connection.
        """


class Hub:
    """Owns rooms and connections; hands each event to every connection in any of its rooms."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[Connection]] = {}
        self._joined: dict[Connection, tuple[str, ...]] = {}
        self.messages_sent = 0
        self.connections_dropped = 0

    @property
    def connection_count(self) -> int:
        """How many connections are in at least one room."""
        return len(self._joined)

    def join(self, connection: Connection, rooms: Iterable[str]) -> None:
        """Add a connection to rooms, in addition to those it is in."""
        joined = self._joined.get(connection, ())
        added = tuple(room for room in dict.fromkeys(rooms) if room not in joined)
        for room in added:
            self._rooms.setdefault(room, set()).add(connection)
        self._joined[connection] = joined + added

    def rooms_of(self, connection: Connection) -> tuple[str, ...]:
        """The rooms a connection is in, in the order joined."""
        return self._joined.get(connection, ())

    def leave_room(self, connection: Connection, room: str) -> bool:
        """Remove a connection from one room; False if it was not in it."""
        joined = self._joined.get(connection, ())
        if room not in joined:
            return False
        self._joined[connection] = tuple(other for other in joined if other != room)
        members = self._rooms[room]
        members.discard(connection)
        if not members:
            del self._rooms[room]
        return True

    def leave(self, connection: Connection) -> None:
        """Remove a connection from every room; leaving twice is harmless."""
        for room in self._joined.pop(connection, ()):
            members = self._rooms[room]
            members.discard(connection)
            if not members:
                del self._rooms[room]

    def members(self, rooms: Iterable[str]) -> set[Connection]:
        """Every connection in any of the rooms, each once."""
        found: set[Connection] = set()
        for room in rooms:
            found |= self._rooms.get(room, set())
        return found

    async def publish(self, event: JobEvent, offset: str) -> None:
        """Push an event to every connection in its rooms; drop those that cannot keep up."""
        targets = self.members(event.rooms)
        if not targets:
            return
        with _pushing(event, len(targets)):
            await self._push(event, offset, targets)

    async def _push(self, event: JobEvent, offset: str, targets: set[Connection]) -> None:
        frames = EventFrames(event, offset)
        for connection in targets:
            frame = frames.for_admin() if connection.sees_error_detail else frames.for_user()
            if await connection.push(frame, offset):
                self.messages_sent += 1
            else:
                self.leave(connection)
                self.connections_dropped += 1


def _pushing(event: JobEvent, connections: int) -> AbstractContextManager[object]:
    """The span of pushing a traced event to its rooms' connections: the end of a job's trace."""
    context = trace_context(event.trace)
    if context is None:
        return nullcontext()
    return tracer.start_as_current_span(
        f"push {event.__struct_config__.tag}",
        context=context,
        kind=SpanKind.PRODUCER,
        attributes={"conduit.job.id": event.job_id, "conduit.ws.connections": connections},
    )
