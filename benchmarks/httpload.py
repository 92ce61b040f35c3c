"""A lean HTTP/1.1 load client: POSTs one fixed JSON body over a kept-alive connection.

The gateway shares two cores with its load. httpx spends about 1.2 ms of CPU per request here,
as much as the gateway itself, so with it the figures would say more about the client than about
the gateway; this client spends about a tenth of that. It speaks only what the benchmark needs:
a request with Content-Length, and an answer with Content-Length.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from types import TracebackType
from urllib.parse import urlsplit

import msgspec

from benchmarks.openloop import OpenLoopStats, open_loop

_HEAD_END = b"\r\n\r\n"


class HttpLoadError(RuntimeError):
    """The server answered in a way this client does not read (no Content-Length)."""


class PostConnection:
    """One connection that POSTs `body` to `url` with `headers`, reconnecting when closed."""

    def __init__(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port/path, got {url!r}")
        self._host, self._port = parts.hostname, parts.port
        lines = [
            f"POST {parts.path or '/'} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> PostConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def post(self) -> tuple[int, bytes]:
        """Send the request and read the answer: its status and body."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        writer.write(self._request)
        head = await reader.readuntil(_HEAD_END)
        status_line, *header_lines = head[: -len(_HEAD_END)].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in header_lines)
        }
        if b"content-length" not in headers:
            raise HttpLoadError(f"answer {status} without Content-Length")
        body = await reader.readexactly(int(headers[b"content-length"]))
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return status, body

    async def close(self) -> None:
        """Close the connection; the next `post` opens a new one."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            # The server may have closed first; there is nothing left to flush either way.
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Answer(msgspec.Struct, frozen=True):
    """One scheduled POST: when the schedule fired it, when its answer came, and the answer."""

    fired_ns: int
    answered_ns: int
    status: int
    body: bytes


class PostLoad(msgspec.Struct, frozen=True, kw_only=True):
    """The answers of an open-loop POST load, the requests that got none, and the schedule."""

    answers: list[Answer]
    failures: list[str]
    schedule: OpenLoopStats


async def post_open_loop(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    connections: int,
    rate_per_s: float,
    duration_s: float,
) -> PostLoad:
    """POST at `rate_per_s` for `duration_s` over `connections` connections.

    Times count from when the schedule fired a request, so time spent waiting for a free
    connection counts too: a gateway that falls behind shows as growing latency.
    """
    due: asyncio.Queue[int] = asyncio.Queue()
    answers: list[Answer] = []
    failures: list[str] = []

    async def send(connection: PostConnection) -> None:
        while True:
            fired_ns = await due.get()
            try:
                status, answer = await connection.post()
                answers.append(Answer(fired_ns, time.perf_counter_ns(), status, answer))
            except (OSError, asyncio.IncompleteReadError, HttpLoadError) as exc:
                failures.append(repr(exc))
                await connection.close()
            finally:
                due.task_done()

    async def fire(_index: int) -> None:
        due.put_nowait(time.perf_counter_ns())

    pool = [PostConnection(url, body, headers) for _ in range(connections)]
    try:
        async with asyncio.TaskGroup() as tasks:
            senders = [tasks.create_task(send(connection)) for connection in pool]
            schedule = await open_loop(rate_per_s, duration_s, fire)
            await due.join()
            for sender in senders:
                sender.cancel()
    finally:
        for connection in pool:
            await connection.close()
    return PostLoad(answers=answers, failures=failures, schedule=schedule)
