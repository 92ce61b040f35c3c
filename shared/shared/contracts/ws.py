"""What the notifier sends over a WebSocket: JSON text frames, a tagged union on `type`.

A connection first gets one `Welcome`, then an `EventPush` per job event addressed to one of its
rooms. `EventPush.offset` is `<queue>:<stream entry id>` (e.g. `default:1700000000000-0`): queue
names hold no `:`, so the first `:` splits it; entry ids order events within one queue. A refused
or dropped connection is closed with one of the close codes below and a short reason.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from shared.contracts.events import JobEvent

Role = Literal["USER", "ADMIN"]

# Private-use close codes (4000-4999), mirroring the HTTP status of the same meaning.
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_SLOW_CONSUMER: Final = 4429
# The WebSocket protocol caps a close reason at 123 bytes of UTF-8.
CLOSE_REASON_MAX_BYTES: Final = 123


class Welcome(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="welcome"):
    """The first message: who the connection is and the rooms it now receives events for."""

    v: int = 1
    sub: str
    role: Role
    rooms: tuple[str, ...]


class EventPush(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="event"):
    """One job event, as this connection's role may see it, with its position in its queue."""

    v: int = 1
    offset: str
    event: JobEvent


ServerMessage = Welcome | EventPush


def event_offset(queue: str, entry_id: str) -> str:
    """The offset of the events-stream entry `entry_id` of `queue`."""
    return f"{queue}:{entry_id}"
