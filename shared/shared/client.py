"""A small typed asyncio client of the notifier's WebSocket, for tests and other backends.

    async with connect("ws://127.0.0.1:8001/ws", token) as client:
        async for message in client:
            ...  # Welcome, EventPush, Resync, ... (shared.contracts.ws)

It remembers the last offset it saw of each queue and, when the connection drops or the notifier
sheds it as slow, connects again after a jittered backoff with `since` set to those offsets, so
nothing is missed (or a `Resync` says to refetch). A notifier that stops says when to come back
(`Reconnect`), and one too busy to admit the handshake says when to retry (close 1013): the
client waits that long instead. Each new connection starts with a `Welcome`.
Entity rooms are not joined again by the client: their tokens are short-lived, so the caller
joins again with a new one after a `Welcome`, passing `since=client.resumed_from` to get what the
rooms missed meanwhile (a join that did not see its `Joined` is best joined again with the
`since` it was sent with). When the token is given as a callable it is asked
for a fresh token at each connect and whenever the notifier says the token is expiring. With
`token_in_message`, the token goes in an `auth` first message rather than the URL, keeping it out
of URLs and proxy logs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from urllib.parse import urlencode

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Close

from shared.contracts.ws import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    Auth,
    ClientMessage,
    EventPush,
    Join,
    Leave,
    PresenceQuery,
    Reconnect,
    Refresh,
    ServerMessage,
    TokenExpiring,
    format_since,
    parse_offset,
    retry_after_ms,
)
from shared.streams import entry_order

logger = logging.getLogger(__name__)

# Closed for a reason that connecting again with the same request would not fix.
FINAL_CLOSE_CODES = frozenset(
    {CLOSE_BAD_REQUEST, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_MESSAGE_TOO_BIG}
)

TokenSource = str | Callable[[], str]

_decoder = msgspec.json.Decoder(ServerMessage)
_encoder = msgspec.json.Encoder()


class NotifierClosedError(Exception):
    """The notifier closed the connection for good (refused token, origin or request)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class NotifierClient:
    """One logical subscription to the notifier, across as many connections as it takes."""

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        since: Mapping[str, str] | None = None,
        reconnect: bool = True,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 10.0,
        token_in_message: bool = False,
    ) -> None:
        self._url = url
        self._token = token
        self._reconnect = reconnect
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._token_in_message = token_in_message
        self._socket: ClientConnection | None = None
        self._closed = False
        # The delay the notifier asked for in a `Reconnect`, until the close that follows it.
        self._come_back_after_s: float | None = None
        # The last offset seen of each queue; and those the current connection was opened with.
        self.offsets: dict[str, str] = dict(since or {})
        self.resumed_from: dict[str, str] = {}
        self.connections = 0

    async def __aenter__(self) -> NotifierClient:
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[ServerMessage]:
        return self.messages()

    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Every server message, across reconnects, until `close` or a final close code."""
        delay_s = self._backoff_min_s
        while not self._closed:
            told_s: float | None = None
            try:
                socket = self._socket or await self._connect()
                frame = await socket.recv()
            except ConnectionClosed as exc:
                self._socket = None
                received = exc.rcvd
                if received is not None and received.code in FINAL_CLOSE_CODES:
                    raise NotifierClosedError(received.code, received.reason) from exc
                if self._closed or not self._reconnect:
                    return
                told_s = self._told_to_wait_s(received)
                logger.info("notifier connection closed (%r), reconnecting", received)
            except (OSError, InvalidHandshake) as exc:
                self._socket = None
                if not self._reconnect:
                    raise
                logger.info("notifier unreachable (%r), retrying", exc)
            else:
                delay_s = self._backoff_min_s
                try:
                    message = _decoder.decode(frame)
                except msgspec.ValidationError as exc:
                    # A message type newer than this client: skipped, as the contract evolves.
                    logger.debug("skipping unknown notifier message: %r", exc)
                    continue
                if isinstance(message, EventPush):
                    self._saw(message.offset)
                elif isinstance(message, TokenExpiring) and callable(self._token):
                    await self.send(Refresh(token=self._token()))
                elif isinstance(message, Reconnect):
                    self._come_back_after_s = message.after_ms / 1000
                yield message
                continue
            if told_s is not None:
                await asyncio.sleep(told_s)
                continue
            # Jittered, so that clients shed together do not come back together.
            await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))  # noqa: S311
            delay_s = min(delay_s * 2, self._backoff_max_s)

    async def send(self, message: ClientMessage) -> None:
        """Send one message on the current connection."""
        if self._socket is None:
            raise ConnectionError("not connected")
        await self._socket.send(_encoder.encode(message).decode())

    async def join(self, subscription_token: str, since: Mapping[str, str] | None = None) -> None:
        """Ask to join the entity room a gateway subscription token names (answer: `Joined`).

        With `since` (offsets by queue) the room's events after them come first, `recovered`.
        """
        offsets = format_since(since) if since else None
        await self.send(Join(token=subscription_token, since=offsets))

    async def leave(self, room: str) -> None:
        """Ask to leave an entity room (answer: `Left`)."""
        await self.send(Leave(room=room))

    async def presence(self, room: str) -> None:
        """Ask who is in a room (answer: `Presence`)."""
        await self.send(PresenceQuery(room=room))

    async def close(self) -> None:
        """Close the connection; the message iterator ends."""
        self._closed = True
        if self._socket is not None:
            await self._socket.close()
            self._socket = None

    def url(self) -> str:
        """The next connection's URL: the token (unless sent first) and, once known, `since`."""
        query = {} if self._token_in_message else {"token": self._current_token()}
        if self.offsets:
            query["since"] = format_since(self.offsets)
        return f"{self._url}?{urlencode(query)}" if query else self._url

    def _saw(self, offset: str) -> None:
        # An entity room's catch-up goes back behind what was pushed live: the offset only grows.
        queue, entry_id = parse_offset(offset)
        last = self.offsets.get(queue)
        if last is None or entry_order(entry_id) > entry_order(last):
            self.offsets[queue] = entry_id

    def _current_token(self) -> str:
        return self._token() if callable(self._token) else self._token

    def _told_to_wait_s(self, received: Close | None) -> float | None:
        """How long the notifier asked this client to wait before it connects again, if it did."""
        told_s, self._come_back_after_s = self._come_back_after_s, None
        if told_s is not None:
            # Already spread by the notifier, client by client.
            return told_s
        if received is not None and received.code == CLOSE_TRY_AGAIN:
            after_ms = retry_after_ms(received.reason)
            if after_ms is not None:
                # A little jitter on top, so clients told the same do not return in lockstep.
                return after_ms / 1000 * random.uniform(1.0, 1.2)  # noqa: S311
        return None

    async def _connect(self) -> ClientConnection:
        resuming_from = dict(self.offsets)
        socket = await ws_connect(self.url(), compression=None)
        if self._token_in_message:
            try:
                await socket.send(_encoder.encode(Auth(token=self._current_token())).decode())
            except BaseException:
                await socket.close()
                raise
        self._socket = socket
        self.resumed_from = resuming_from
        self.connections += 1
        return socket


@asynccontextmanager
async def connect(
    url: str,
    token: TokenSource,
    since: Mapping[str, str] | None = None,
    *,
    reconnect: bool = True,
    backoff_min_s: float = 0.1,
    backoff_max_s: float = 10.0,
    token_in_message: bool = False,
) -> AsyncIterator[NotifierClient]:
    """A connected client of the notifier's `/ws` at `url`; closed on exit."""
    client = NotifierClient(
        url,
        token,
        since=since,
        reconnect=reconnect,
        backoff_min_s=backoff_min_s,
        backoff_max_s=backoff_max_s,
        token_in_message=token_in_message,
    )
    async with client:
        yield client
