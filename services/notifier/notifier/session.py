"""One client's session on an open socket: its token's lifetime and the messages it sends."""

from __future__ import annotations

import math
import time

import msgspec
from litestar.exceptions import NotAuthorizedException

from notifier.auth import Identity, InvalidSubscriptionError, TokenVerifier
from notifier.catchup import CatchUp
from notifier.connection import SocketConnection
from notifier.coverage import Coverage
from notifier.hub import Hub
from notifier.presence import RedisPresence, has_presence
from shared.connections import REDIS_FAILURES
from shared.contracts.codec import encoder
from shared.contracts.ws import (
    CLOSE_UNAUTHORIZED,
    Auth,
    ClientMessage,
    Error,
    Join,
    Joined,
    Leave,
    Left,
    OffsetError,
    Presence,
    PresenceQuery,
    Refresh,
    ServerMessage,
    TokenExpiring,
    TokenRefreshed,
    is_entity_room,
)

_decoder = msgspec.json.Decoder(ClientMessage)


class Session:
    """Answers a client's messages and ends the connection when its access token runs out.

    It joins and leaves entity rooms with subscription tokens signed by the gateway, catching a
    room up from the offsets the join names, and says who is in a room.

    `warn_s` ahead of the token's `exp` the client is sent `token_expiring`; a `refresh` with a
    valid token for the same user and role moves `exp`; at `exp` the connection is closed 4401.
    """

    def __init__(
        self,
        connection: SocketConnection,
        hub: Hub,
        tokens: TokenVerifier,
        presence: RedisPresence,
        *,
        catch_up: CatchUp,
        had: Coverage,
        member: str,
        warn_s: float,
        max_entity_rooms: int,
    ) -> None:
        self._connection = connection
        self._hub = hub
        self._presence = presence
        self._catch_up = catch_up
        self._had = had
        self._member = member
        self._tokens = tokens
        self._warn_s = warn_s
        self._max_entity_rooms = max_entity_rooms
        self._warned = False

    @property
    def identity(self) -> Identity:
        """Who the client is now."""
        return self._connection.identity

    def wake_at(self) -> float:
        """The warning time while not warned yet, else the expiry."""
        expires_at = self.identity.expires_at
        return expires_at if self._warned else expires_at - self._warn_s

    async def on_wake(self) -> None:
        """Warn of the expiry once, then close at the expiry itself."""
        remaining_s = self.identity.expires_at - time.time()
        if remaining_s <= 0:
            self._connection.close(CLOSE_UNAUTHORIZED, "unauthorized: token expired")
            return
        self._warned = True
        await self._send(TokenExpiring(expires_in_s=math.ceil(remaining_s)))

    async def on_message(self, message: bytes) -> None:
        """Decode and act on one client message; a bad one is answered with an error."""
        try:
            command = _decoder.decode(message)
        except msgspec.DecodeError as exc:
            await self._send(Error(reason=f"bad message: {exc}"[:200]))
            return
        if isinstance(command, Refresh):
            await self._refresh(command)
        elif isinstance(command, Join):
            await self._join(command)
        elif isinstance(command, Leave):
            await self._leave(command)
        elif isinstance(command, Auth):
            reason = "auth refused: already authenticated; send refresh for a new token"
            await self._send(Error(reason=reason))
        else:
            await self._answer_presence(command)

    async def _answer_presence(self, command: PresenceQuery) -> None:
        room = command.room
        admin = self.identity.role == "ADMIN"
        if not has_presence(room):
            await self._send(
                Error(
                    reason="presence refused: kept for user and entity rooms only", room=room[:200]
                )
            )
            return
        if not admin and room not in self._hub.rooms_of(self._connection):
            await self._send(Error(reason="presence refused: not in this room", room=room))
            return
        try:
            present = await self._presence.of(room)
        except REDIS_FAILURES as exc:
            await self._send(Error(reason=f"presence unavailable: {exc!r}"[:200], room=room))
            return
        await self._send(
            Presence(
                room=room,
                users=len(present.subs),
                connections=present.connections,
                subs=present.subs if admin else None,
            )
        )

    async def _join(self, command: Join) -> None:
        room = await self._room_to_join(command.token)
        if room is None:
            return
        joined = self._hub.rooms_of(self._connection)
        if room in joined:
            # Its events have been coming all along: there is nothing to catch up.
            await self._send(Joined(room=room))
            return
        since = await self._join_since(room, command.since, joined)
        if since is None or (since and not await self._connection.hold_live_events()):
            return
        # Joined with no suspension after `live` is taken: every later event reaches the client.
        live = self._catch_up.live()
        self._hub.join(self._connection, [room])
        self._presence.enter(self._member, [room])
        if await self._catch_up.send_missed(
            self._connection, since, {room}, live, self._had, room=room
        ):
            await self._send(Joined(room=room))

    async def _room_to_join(self, token: str) -> str | None:
        """The entity room a subscription token lets this client join; None if refused."""
        try:
            claims = self._tokens.subscription(token)
        except InvalidSubscriptionError as exc:
            await self._send(Error(reason=f"join refused: {exc}"[:200]))
            return None
        room = claims.room
        if claims.sub != self.identity.sub:
            await self._send(Error(reason="join refused: the token is for another user", room=room))
            return None
        # Signed by the gateway or not, user and role rooms are only ever joined at connect.
        if not is_entity_room(room):
            await self._send(Error(reason="join refused: not an entity room", room=room))
            return None
        return room

    async def _join_since(
        self, room: str, raw: str | None, joined: tuple[str, ...]
    ) -> dict[str, str] | None:
        """The offsets to catch `room` up from (maybe none); None if the join is refused."""
        if sum(map(is_entity_room, joined)) >= self._max_entity_rooms:
            reason = f"join refused: at most {self._max_entity_rooms} entity rooms"
            await self._send(Error(reason=reason, room=room))
            return None
        try:
            return self._catch_up.since(raw)
        except OffsetError as exc:
            await self._send(Error(reason=f"join refused: bad since: {exc}"[:200], room=room))
            return None

    async def _leave(self, command: Leave) -> None:
        room = command.room
        if not is_entity_room(room):
            await self._send(Error(reason="leave refused: not an entity room", room=room))
        elif self._hub.leave_room(self._connection, room):
            self._presence.leave(self._member, [room])
            self._had.remove(room)
            await self._send(Left(room=room))
        else:
            await self._send(Error(reason="leave refused: not in this room", room=room[:200]))

    async def _refresh(self, command: Refresh) -> None:
        try:
            refreshed = self._tokens.identity(command.token)
        except NotAuthorizedException as exc:
            await self._send(Error(reason=f"refresh refused: {exc.detail}"[:200]))
            return
        current = self.identity
        if (refreshed.sub, refreshed.role) != (current.sub, current.role):
            # Its rooms follow from sub and role: another user needs another connection.
            await self._send(Error(reason="refresh refused: the token is for another user or role"))
            return
        self._connection.identity = refreshed
        self._warned = False
        await self._send(
            TokenRefreshed(expires_in_s=max(0, math.ceil(refreshed.expires_at - time.time())))
        )

    async def _send(self, message: ServerMessage) -> None:
        # A failed send marks the connection for closing; its own loop then ends.
        await self._connection.send(encoder.encode(message).decode())
