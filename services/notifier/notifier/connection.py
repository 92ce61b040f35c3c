"""One client socket as the hub sees it: bounded pushes, a catch-up buffer, and its own reading."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Protocol

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from notifier.auth import Identity
from notifier.recovery import entry_order
from shared.contracts.ws import CLOSE_MESSAGE_TOO_BIG, CLOSE_SLOW_CONSUMER, parse_offset

logger = logging.getLogger(__name__)


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

    A push writes straight to the socket. Under uvicorn a send returns at once while the
    transport's write buffer is below its high-water mark and waits once it is above, so the
    transport buffer is the per-client bound: a push that would wait longer than `send_timeout_s`
    marks the client slow, and its own handler closes it. No queue and no task per client.

    While the client catches up, live pushes are held in a bounded buffer instead, and written
    after the history, skipping any the history already held.
    """

    __slots__ = (
        "_buffer",
        "_buffer_max",
        "_closing",
        "_max_message_bytes",
        "_send_timeout_s",
        "_socket",
        "close_with",
        "identity",
    )

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        identity: Identity,
        *,
        send_timeout_s: float,
        max_message_bytes: int,
        buffer_max: int,
    ) -> None:
        self._socket = socket
        self._send_timeout_s = send_timeout_s
        self._max_message_bytes = max_message_bytes
        self._buffer_max = buffer_max
        self._buffer: deque[tuple[str, str]] | None = None
        self._closing: asyncio.Timeout | None = None
        self.identity = identity
        # The close code and reason the client's own handler ends the connection with, if any.
        self.close_with: tuple[int, str] | None = None

    @property
    def sees_error_detail(self) -> bool:
        """Admins see an error's detail."""
        return self.identity.role == "ADMIN"

    def hold_live_events(self) -> None:
        """Buffer live pushes until `release_live_events`, while the history is sent."""
        self._buffer = deque()

    async def release_live_events(self, recovered_up_to: dict[str, str]) -> bool:
        """Send the held pushes not already recovered, then push live again; False if dropped.

        `recovered_up_to` holds, per queue, the last entry id sent from the history.
        """
        held = self._buffer
        if held is None:
            return self.close_with is None
        last = {queue: entry_order(entry_id) for queue, entry_id in recovered_up_to.items()}
        # Pushes that arrive while these are written join the end of the buffer; it is
        # dropped only once empty, with no await in between, so none is lost at the switch.
        while held:
            offset, frame = held.popleft()
            queue, entry_id = parse_offset(offset)
            if queue in last and entry_order(entry_id) <= last[queue]:
                continue
            if not await self.send(frame) or self._buffer is None:
                return False
        self._buffer = None
        return True

    async def push(self, frame: str, offset: str) -> bool:
        """Send a live event's frame, or hold it while catching up."""
        if self.close_with is not None:
            return False
        if self._buffer is None:
            return await self.send(frame)
        if len(self._buffer) >= self._buffer_max:
            self._drop(CLOSE_SLOW_CONSUMER, "slow consumer: too many events during catch-up")
            return False
        self._buffer.append((offset, frame))
        return True

    async def send(self, frame: str) -> bool:
        """Send one frame, or report that this client is gone or too slow to keep."""
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await self._socket.send_data(frame)
        except TimeoutError:
            self._drop(CLOSE_SLOW_CONSUMER, "slow consumer")
            return False
        except (WebSocketDisconnect, OSError) as exc:
            logger.debug("push to %s failed, client gone: %r", self.identity.sub, exc)
            return False
        return True

    async def wait_until_done(self, handler: MessageHandler) -> None:
        """Hand what the client sends to `handler` until the client leaves or must be closed."""
        try:
            async with asyncio.timeout(None) as closing:
                self._closing = closing
                while self.close_with is None:
                    message = await self._receive_until(handler.wake_at())
                    if message is None:
                        await handler.on_wake()
                    elif len(message) > self._max_message_bytes:
                        reason = f"message too big: limit {self._max_message_bytes} bytes"
                        self.close_with = (CLOSE_MESSAGE_TOO_BIG, reason)
                    else:
                        await handler.on_message(message)
        except WebSocketDisconnect:
            return
        except TimeoutError:
            if self.close_with is None:
                raise
        finally:
            self._closing = None

    def close(self, code: int, reason: str) -> None:
        """Have the client's handler close the connection with this code once it gets to it."""
        self._drop(code, reason)

    async def _receive_until(self, wake_at: float) -> bytes | None:
        # None once the wall clock reaches `wake_at` with nothing received.
        delay_s = max(0.0, wake_at - time.time())
        try:
            async with asyncio.timeout(delay_s) as waking:
                return await self._receive()
        except TimeoutError:
            if waking.expired():
                return None
            raise

    async def _receive(self) -> bytes:
        event = await self._socket.receive()
        if event["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(detail="disconnect event", code=event["code"])
        text = event.get("text")
        if isinstance(text, str):
            return text.encode()
        data = event.get("bytes")
        return data if isinstance(data, bytes) else b""

    def _drop(self, code: int, reason: str) -> None:
        self.close_with = (code, reason)
        self._buffer = None
        # Expiring the scope that `wait_until_done` sits in wakes the client's own task, which
        # then does the closing; the hub never waits for it.
        if self._closing is not None:
            self._closing.reschedule(-1)
