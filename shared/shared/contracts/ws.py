"""What the notifier sends over a WebSocket: JSON text frames, a tagged union on `type`.

A connection first gets one `Welcome`, then an `EventPush` per job event addressed to one of its
rooms. `EventPush.offset` is `<queue>:<stream entry id>` (e.g. `default:1700000000000-0`): queue
names hold no `:`, so the first `:` splits it; entry ids order events within one queue. A refused
or dropped connection is closed with one of the close codes below and a short reason.

Catch-up: a client that connects with `?since=<offset>[,<offset>...]` (its last offset of each
queue) first gets every event of its rooms it missed, in order and marked `recovered`, then live
events, none twice; or, for a queue whose history no longer reaches back to its offset, a `Resync`
saying it should refetch that queue's state over REST.

Clients send `ClientMessage`s: JSON text frames, tagged on `type` too. An access token runs out:
ahead of its `exp` the server sends `TokenExpiring`; a `Refresh` with a new token for the same
user keeps the connection (answered by `TokenRefreshed`), else it is closed with 4401. A message
the server cannot use is answered with an `Error`; the connection stays.

Entity rooms (`entity:<kind>:<id>`) are joined with a subscription token: a short-lived JWT the
gateway signs (`POST /v1/subscriptions`) after its own access check, with the claims of
`SubscriptionClaims`. The client sends it in a `Join` and gets `Joined`, or an `Error` naming
the room; `Leave` leaves an entity room again. Entity rooms catch up too: a `Join` with `since`
(the same offsets as the query parameter; after a reconnect, those the connection was opened
with) first gets the room's events it missed, marked `recovered`, or a `Resync` naming the room;
then the live events of its rooms that came meanwhile, and `Joined` once it is caught up. An
event it already got through another of its rooms is not sent again.

`PresenceQuery` asks who is connected in a room (a user or entity room; users only of rooms they
are in): the `Presence` answer counts users and connections on every instance, and lists the
users' `sub`s for admins only.

The access token goes in the `token` query parameter, or, to keep it out of URLs and proxy logs,
in an `Auth` sent as the first message within the server's deadline (the URL then has no
`token`). Until it is verified the client is in no room and is sent nothing; a bad, missing or
late one is closed with 4401.

Reconnect storms: a notifier that stops sends each client a `Reconnect` with its own jittered
`after_ms`, then closes with 1012; a client comes back after that delay (and catches up by
offset), so the clients of a stopped instance do not all return at once. A notifier admits
handshakes at a bounded rate: over it, a client is closed with 1013 and a reason that says when to
retry (`retry_after_ms` reads it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from shared.contracts.events import JobEvent

Role = Literal["USER", "ADMIN"]

# Private-use close codes (4000-4999), mirroring the HTTP status of the same meaning.
CLOSE_UNAUTHORIZED: Final = 4401
# 4408 as in HTTP 408: the client did not take what was sent in time; it may come back with
# its last offset and catch up.
CLOSE_SLOW_CONSUMER: Final = 4408
# The standard code for a message larger than the server accepts (RFC 6455, 7.4.1).
CLOSE_MESSAGE_TOO_BIG: Final = 1009
# The standard "try again later": the server could not serve the connection just now (Redis
# down, or too many handshakes at once); a reason made by `try_again_reason` says when to retry.
CLOSE_TRY_AGAIN: Final = 1013
# The standard "service restart": the notifier stops; a `Reconnect` came just before.
CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_BAD_REQUEST: Final = 4400
CLOSE_FORBIDDEN: Final = 4403
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
    # Sent during catch-up, from history, rather than live.
    recovered: bool = False


class Resync(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="resync"):
    """Events of `queue` since the client's offset are no longer all kept: refetch over REST.

    `room` names the entity room whose catch-up (a `Join` with `since`) it answers; without it,
    it is about the rooms the connection was opened with.
    """

    v: int = 1
    queue: str
    reason: str
    room: str | None = None


class TokenExpiring(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="token_expiring"
):
    """The access token runs out in `expires_in_s`: send a `Refresh` before then."""

    v: int = 1
    expires_in_s: int


class TokenRefreshed(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="token_refreshed"
):
    """The refreshed token was accepted; the connection now lasts `expires_in_s` more."""

    v: int = 1
    expires_in_s: int


class Error(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="error", omit_defaults=True
):
    """A client message was refused; `reason` says why, `room` which room it was about."""

    v: int = 1
    reason: str
    room: str | None = None


class Joined(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="joined"):
    """The connection now receives the events of `room`."""

    v: int = 1
    room: str


class Left(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="left"):
    """The connection no longer receives the events of `room`."""

    v: int = 1
    room: str


class Presence(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="presence", omit_defaults=True
):
    """Who is connected in `room` now; `subs` only for admins."""

    v: int = 1
    room: str
    users: int
    connections: int
    subs: tuple[str, ...] | None = None


class Reconnect(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="reconnect"):
    """This notifier stops and closes the connection next: connect again after `after_ms`.

    Each client gets its own delay, spread over a window, so that they do not all come back at once.
    """

    v: int = 1
    after_ms: int
    reason: str = "service restart"


ServerMessage = (
    Welcome
    | EventPush
    | Resync
    | TokenExpiring
    | TokenRefreshed
    | Error
    | Joined
    | Left
    | Presence
    | Reconnect
)


class Auth(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="auth"):
    """The access token, as the first message of a connection opened without `?token=`."""

    token: str


class Refresh(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="refresh"):
    """A new access token for the same user, to keep the connection past the old one's `exp`."""

    token: str


class Join(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="join"):
    """Join the entity room a subscription token names, catching up from `since` if given.

    `since` has the form of the `since` query parameter: `<queue>:<entry id>`, comma-separated.
    """

    token: str
    since: str | None = None


class Leave(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="leave"):
    """Leave an entity room joined before."""

    room: str


class PresenceQuery(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="presence"):
    """Ask who is connected in `room`."""

    room: str


ClientMessage = Auth | Refresh | Join | Leave | PresenceQuery

SUBSCRIPTION_TOKEN_TYPE: Final = "subscription"  # noqa: S105 - a claim's value, not a secret
_ENTITY_ROOM = re.compile(r"entity:[a-z][a-z0-9_-]{0,63}:[A-Za-z0-9_.-]{1,128}")


class SubscriptionClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The claims of a subscription token: `sub` may join `room` until `exp` (Unix seconds)."""

    sub: str
    room: str
    exp: int
    typ: Literal["subscription"] = SUBSCRIPTION_TOKEN_TYPE


def is_entity_room(room: str) -> bool:
    """Whether `room` is a well-formed `entity:<kind>:<id>` room."""
    return _ENTITY_ROOM.fullmatch(room) is not None


_RETRY_AFTER = re.compile(r"retry after (\d{1,9}) ms")


def try_again_reason(after_ms: int) -> str:
    """The reason of a 1013 close that tells the client to retry after `after_ms`."""
    return f"try again later: retry after {after_ms} ms"


def retry_after_ms(reason: str) -> int | None:
    """The delay a 1013 close's reason asks for (see `try_again_reason`); None if it names none."""
    found = _RETRY_AFTER.search(reason)
    return None if found is None else int(found.group(1))


class OffsetError(ValueError):
    """An offset is not `<queue>:<milliseconds>-<sequence>`."""


def event_offset(queue: str, entry_id: str) -> str:
    """The offset of the events-stream entry `entry_id` of `queue`."""
    return f"{queue}:{entry_id}"


def parse_offset(offset: str) -> tuple[str, str]:
    """The queue and entry id of an offset, or OffsetError."""
    queue, _, entry_id = offset.partition(":")
    milliseconds, _, sequence = entry_id.partition("-")
    if not (queue and milliseconds.isdigit() and sequence.isdigit()):
        raise OffsetError(f"not an offset: {offset[:64]!r}")
    return queue, entry_id


def format_since(offsets: Mapping[str, str]) -> str:
    """A `since` parameter from the last entry id per queue."""
    return ",".join(event_offset(queue, entry_id) for queue, entry_id in offsets.items())


def parse_since(since: str) -> dict[str, str]:
    """A `since` parameter's last entry id per queue, or OffsetError (also for a queue twice)."""
    found: dict[str, str] = {}
    for offset in since.split(","):
        queue, entry_id = parse_offset(offset.strip())
        if queue in found:
            raise OffsetError(f"two offsets for queue {queue!r}")
        found[queue] = entry_id
    return found
