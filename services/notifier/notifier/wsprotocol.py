"""The WebSocket protocol uvicorn runs for the notifier: its own sans-I/O one, with two changes.

On SIGTERM uvicorn shuts every open WebSocket down itself, before the app's lifespan ends, by
closing it with 1012. Here that close is preceded by a `reconnect` message giving this client its
own delay, drawn uniformly from the restart window, so that the clients of a stopped instance
return spread over the window (and catch up by offset) instead of in one wave.

A peer that stops answering pings is closed by uvicorn, which then waits for what is still
buffered for it to be sent; a peer that reads nothing never takes it, and the app would hear of
the loss only when the kernel gives up, minutes later. Here the connection is cut at once.

And a push, one event's frame to thousands of sockets, may skip the ASGI send: built once, the
frame is written straight to each transport that takes it without waiting (the `conduit.direct`
scope extension). Through Litestar, its middleware and uvicorn's send, each delivery cost several
times as much (make bench, py-spy: 71 % of the notifier's time in a broadcast).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from shared.contracts.codec import encoder
from shared.contracts.ws import CLOSE_SERVICE_RESTART, Reconnect

RESTART_REASON = "service restart"
DIRECT_WRITE_EXTENSION = "conduit.direct"

# Writes a whole, ready WebSocket frame if the socket takes it now; False, writing nothing, if not.
FrameWriter = Callable[[bytes], bool]


def direct_writer(scope: Mapping[str, Any]) -> FrameWriter | None:
    """The socket's frame writer, when the server is the notifier's protocol; else None."""
    extension = scope.get("extensions", {}).get(DIRECT_WRITE_EXTENSION)
    return None if extension is None else extension["write"]


def reconnect_after_ms(window_ms: int, rng: random.Random) -> int:
    """One client's delay before it connects again: uniform over `[0, window_ms]`."""
    return rng.randint(0, window_ms)


def notifier_protocol(restart_window_ms: int) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's sans-I/O WebSocket protocol with the notifier's shutdown and keepalive changes.

    Pass it to uvicorn as `ws=`. It is also the protocol the notifier's pushes are written for: a
    send waits for a full transport to drain before it writes anything (see `connection`).
    """
    rng = random.Random()  # noqa: S311 - spreads reconnects; nothing secret

    class NotifierProtocol(WebSocketsSansIOProtocol):
        """Says when to reconnect before the shutdown's 1012; cuts peers that stop answering.

        It also offers the app its frame writer, in the scope's extensions.
        """

        def handle_connect(self, event: Request) -> None:
            """Accept or refuse as uvicorn does; an accepted socket's scope gets the writer."""
            super().handle_connect(event)
            if not self.close_sent:
                self.scope["extensions"][DIRECT_WRITE_EXTENSION] = {"write": self.write_frame}

        def write_frame(self, frame: bytes) -> bool:
            """Write a ready frame unless the socket is not open or its transport is full."""
            if (
                self.close_sent
                or self.conn.state is not State.OPEN
                or not self.writable.is_set()
                or self.transport.is_closing()
            ):
                return False
            self.transport.write(frame)
            return True

        def shutdown(self) -> None:
            """Tell an open connection when to come back, then close it; others as uvicorn does."""
            if self.disconnected or self.close_sent or self.conn.state is not State.OPEN:
                super().shutdown()
                return
            self.stop_keepalive()
            after_ms = reconnect_after_ms(restart_window_ms, rng)
            self.conn.send_text(encoder.encode(Reconnect(after_ms=after_ms, reason=RESTART_REASON)))
            self.conn.send_close(CLOSE_SERVICE_RESTART, RESTART_REASON)
            self.transport.write(b"".join(self.conn.data_to_send()))
            # What uvicorn's own shutdown tells the app: the client is gone, no close to send.
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_SERVICE_RESTART})
            self.transport.close()

        def keepalive_timeout(self) -> None:
            """Close as uvicorn does, then drop what is still buffered for the silent peer."""
            was_open = not self.close_sent and not self.transport.is_closing()
            super().keepalive_timeout()
            if was_open:
                self.transport.abort()

    return NotifierProtocol
