"""One client socket as the hub sees it: pushes that never wait, a bounded send buffer, reading."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Set
from contextlib import asynccontextmanager
from typing import Any, Protocol

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from notifier.auth import Identity
from notifier.frames import TextFrame
from notifier.wsprotocol import direct_writer
from shared.contracts.ws import CLOSE_MESSAGE_TOO_BIG, CLOSE_SLOW_CONSUMER

logger = logging.getLogger(__name__)

# What a send to a client that is gone raises: the ASGI server's OSError, Litestar's disconnect,
# and uvicorn's RuntimeError for a send after it closed the connection itself (no pong) and
# before it has told the app.
_GONE = (WebSocketDisconnect, OSError, RuntimeError)


class MessageHandler(Protocol):
    """What a connection hands the client's messages to, and when it should be woken."""

    def wake_at(self) -> float:
        """The Unix time at which `on_wake` is due if the client says nothing before."""

    async def on_wake(self) -> None:
        """The time given by `wake_at` has come."""

    async def on_message(self, message: bytes) -> None:
        """The client sent a message within the size limit."""


class SocketConnection:
    """One authenticated client socket, as a hub `Connection`.

    A push writes straight to the socket when the socket takes it without waiting, which is the
    usual case: no queue and no task per client, no timer per push. Under uvicorn a send waits
    only while the transport's write buffer is above its high-water mark, and then before it
    writes anything. A push that would wait goes instead to this client's send buffer, which the
    client's own task (the one reading its messages) writes out as fast as the client reads.
    The buffer is bounded in messages and in bytes; past either the client is closed 4408 as slow,
    and may come back with its offsets to catch up.

    While the client catches up, live pushes are held in the same buffer and written after the
    history, skipping any the history already held.
    """

    __slots__ = (
        "_closing",
        "_gone",
        "_holding",
        "_max_buffer_bytes",
        "_max_buffer_messages",
        "_max_message_bytes",
        "_pending",
        "_pending_bytes",
        "_socket",
        "_waiting",
        "_write_frame",
        "close_with",
        "identity",
    )

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        identity: Identity,
        *,
        max_message_bytes: int,
        max_buffer_messages: int,
        max_buffer_bytes: int,
    ) -> None:
        self._socket = socket
        self._write_frame = direct_writer(socket.scope)
        self._max_message_bytes = max_message_bytes
        self._max_buffer_messages = max_buffer_messages
        self._max_buffer_bytes = max_buffer_bytes
        # Frames for the client's own task to write, as (offset, frame, size in bytes); None while
        # pushes go straight to the socket. Never empty while not holding.
        self._pending: deque[tuple[str, str, int]] | None = None
        self._pending_bytes = 0
        # Catching up: pending frames wait for `release_live_events`.
        self._holding = False
        # A send failed: the client is gone, and nothing is to be sent to it, not even a close.
        self._gone = False
        # The scope the client's own task runs in, and its wait for the client's next message.
        self._closing: asyncio.Timeout | None = None
        self._waiting: asyncio.Timeout | None = None
        self.identity = identity
        # The close code and reason the client's own task ends the connection with, if any.
        self.close_with: tuple[int, str] | None = None

    @property
    def sees_error_detail(self) -> bool:
        """Admins see an error's detail."""
        return self.identity.role == "ADMIN"

    @property
    def buffered(self) -> tuple[int, int]:
        """Messages and bytes in the send buffer now."""
        return (0 if self._pending is None else len(self._pending)), self._pending_bytes

    @asynccontextmanager
    async def lifetime(self) -> AsyncIterator[None]:
        """The client's own task runs in here; closing the client (too slow, say) ends it."""
        try:
            async with asyncio.timeout(None) as closing:
                self._closing = closing
                yield
        except TimeoutError:
            if self.close_with is None and not self._gone:
                raise
        finally:
            self._closing = None

    async def hold_live_events(self) -> bool:
        """Buffer live pushes until `release_live_events`, while history is sent; False if gone.

        What is buffered already is written first, so that the history comes after it.
        """
        if self._pending and not await self._flush():
            return False
        self._pending = deque()
        self._holding = True
        return True

    async def release_live_events(self, recovered: Set[str]) -> bool:
        """Send the held pushes, but those at the `recovered` offsets; False if dropped.

        Then pushes go live again. The held pushes not recovered from history were not in it, or
        not for the rooms caught up: they are the client's all the same.
        """
        return await self._flush(recovered)

    async def push(self, frame: TextFrame, offset: str) -> bool:
        """Write a live event's frame, or buffer it; never waits. False: drop this client."""
        if self.close_with is not None or self._gone:
            return False
        if self._pending is None:
            try:
                if self._write_now(frame):
                    return True
            except _GONE as exc:
                self._lose(exc)
                return False
            self._pending = deque()
            self._wake()
        return self._buffer(offset, frame.text)

    async def send(self, frame: str) -> bool:
        """Write a frame from the client's own task, after those buffered; False once it is gone.

        It waits as long as the client takes to read: memory stays bounded meanwhile, since the
        pushes that arrive go to the bounded buffer, and a peer that stopped answering pings is
        disconnected, which ends the wait.
        """
        if self._pending and not self._holding and not await self._flush():
            return False
        return await self._write(frame)

    async def wait_until_done(self, handler: MessageHandler) -> None:
        """Hand what the client sends to `handler`, and write out the buffer, until it ends."""
        try:
            while self.close_with is None and not self._gone:
                if self._pending:
                    if not await self._flush():
                        return
                    continue
                message = await self._receive_until(handler.wake_at())
                if message is None:
                    # Woken to write the buffer, or ended meanwhile: not the handler's time yet.
                    if not self._pending and self.close_with is None and not self._gone:
                        await handler.on_wake()
                elif len(message) > self._max_message_bytes:
                    reason = f"message too big: limit {self._max_message_bytes} bytes"
                    self.close_with = (CLOSE_MESSAGE_TOO_BIG, reason)
                else:
                    await handler.on_message(message)
        except WebSocketDisconnect:
            return

    def close(self, code: int, reason: str) -> None:
        """Have the client's own task close the connection with this code once it gets to it."""
        self._drop(code, reason)

    def _write_now(self, frame: TextFrame) -> bool:
        """Write `frame` if the socket takes it without waiting; else False, having written nothing.

        Under the notifier's own protocol (see `wsprotocol`) the frame, built once for all its
        sockets, is written straight to the transport. Under another ASGI server the send is
        stepped once instead of awaited: one that completes did not wait, and one that would wait
        is abandoned at its first suspension, before anything is written under uvicorn's sans-I/O
        protocol. A timeout per push would do the same at several times the cost (a timer handle
        per delivery, measured: about 9 µs against 1.5 µs for the step).
        """
        if self._write_frame is not None:
            return self._write_frame(frame.wire)
        sending = self._socket.send_data(frame.text)
        try:
            sending.send(None)
        except StopIteration:
            return True
        sending.close()
        return False

    def _buffer(self, offset: str, frame: str) -> bool:
        pending = self._pending
        if pending is None:
            return False
        size = len(frame) if frame.isascii() else len(frame.encode())
        if len(pending) >= self._max_buffer_messages:
            self._drop(
                CLOSE_SLOW_CONSUMER,
                f"slow consumer: more than {self._max_buffer_messages} messages waiting",
            )
            return False
        if self._pending_bytes + size > self._max_buffer_bytes:
            self._drop(
                CLOSE_SLOW_CONSUMER,
                f"slow consumer: more than {self._max_buffer_bytes} bytes waiting",
            )
            return False
        pending.append((offset, frame, size))
        self._pending_bytes += size
        return True

    async def _flush(self, skip: Set[str] = frozenset()) -> bool:
        """Write the buffer out in order, then push straight again; False if the client is gone.

        Frames at the offsets in `skip` (sent from history by a catch-up) are left out.
        Pushes that arrive while it writes join the end of the buffer; the buffer is dropped only
        once empty, with no await in between, so none is lost or reordered at the switch.
        """
        pending = self._pending
        if pending is None:
            return self.close_with is None and not self._gone
        while pending:
            offset, frame, size = pending.popleft()
            self._pending_bytes -= size
            if offset in skip:
                continue
            if not await self._write(frame) or self._pending is not pending:
                return False
        self._pending = None
        self._holding = False
        return True

    async def _write(self, frame: str) -> bool:
        try:
            await self._socket.send_data(frame)
        except _GONE as exc:
            self._lose(exc)
            return False
        return True

    async def _receive_until(self, wake_at: float) -> bytes | None:
        # None once the wall clock reaches `wake_at` with nothing received, or when woken.
        delay_s = max(0.0, wake_at - time.time())
        try:
            async with asyncio.timeout(delay_s) as waiting:
                self._waiting = waiting
                return await self._receive()
        except TimeoutError:
            if waiting.expired():
                return None
            raise
        finally:
            self._waiting = None

    async def _receive(self) -> bytes:
        event = await self._socket.receive()
        if event["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(detail="disconnect event", code=event["code"])
        text = event.get("text")
        if isinstance(text, str):
            return text.encode()
        data = event.get("bytes")
        return data if isinstance(data, bytes) else b""

    def _wake(self) -> None:
        # The client's own task waits for a message: have it write the buffer first.
        if self._waiting is not None and not self._waiting.expired():
            self._waiting.reschedule(-1)

    def _drop(self, code: int, reason: str) -> None:
        if not self._gone:
            self.close_with = (code, reason)
        self._end()

    def _lose(self, error: BaseException) -> None:
        logger.debug("send to %s failed, client gone: %r", self.identity.sub, error)
        self._gone = True
        self._end()

    def _end(self) -> None:
        self._pending = None
        self._pending_bytes = 0
        self._holding = False
        # Expiring the scope that the client's own task runs in wakes it, and it then does the
        # closing, if any; the hub never waits for it.
        if self._closing is not None and not self._closing.expired():
            self._closing.reschedule(-1)
