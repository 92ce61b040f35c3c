"""The last log lines of each service, kept in Redis so that admins can read them in one place.

A logging handler keeps the lines a process writes in a bounded buffer; a loop of the service
flushes it to the service's capped log stream every second, in one pipeline. Logging never
waits on Redis: while Redis is away the buffer keeps the newest lines and drops the oldest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from shared.connections import REDIS_FAILURES
from shared.logging import ContextFilter, SecretRedactingFilter, json_formatter
from shared.streams import DATA_FIELD, entry_order, log_stream

# How many lines each service's stream keeps, and a process holds while Redis is away.
KEPT_LINES = 1_000
FLUSH_INTERVAL_S = 1.0
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    """One log line as admins read it; `fields` holds the line's extras (job_id, ...)."""

    id: str
    time: str
    level: str
    service: str
    instance: str
    logger: str
    message: str
    fields: dict[str, Any] = {}


class RecentLogs(logging.Handler):
    """Buffers this process's log lines for the flush loop; thread-safe, never blocks."""

    def __init__(self, redis: Redis, service: str) -> None:
        super().__init__()
        self._redis = redis
        self._service = service
        self._buffer: collections.deque[bytes] = collections.deque(maxlen=KEPT_LINES)
        self.setFormatter(json_formatter(service))
        self.addFilter(ContextFilter())
        self.addFilter(SecretRedactingFilter())
        self._instance = f"{socket.gethostname()}-{os.getpid()}"

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted line, tagged with this process."""
        if record.name.startswith(("redis", __name__)):
            # A line about a failed flush must not be flushed in a loop of its own.
            return
        try:
            line = msgspec.json.decode(self.format(record))
            line["instance"] = self._instance
            self._buffer.append(msgspec.json.encode(line))
        # Logging must never raise into the code that logs.
        except Exception:
            self.handleError(record)

    async def flush_once(self) -> int:
        """Write the buffered lines to the service's stream; returns how many were written."""
        lines = list(self._buffer)
        if not lines:
            return 0
        stream = log_stream(self._service)
        async with self._redis.pipeline(transaction=False) as pipe:
            for line in lines:
                pipe.xadd(stream, {DATA_FIELD: line}, maxlen=KEPT_LINES, approximate=True)
            await pipe.execute()
        for _ in lines:
            self._buffer.popleft()
        return len(lines)

    async def run(self) -> None:
        """Flush every second until cancelled; a Redis outage keeps the newest lines buffered."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            with contextlib.suppress(*REDIS_FAILURES):
                await self.flush_once()

    @contextlib.asynccontextmanager
    async def installed(self) -> AsyncIterator[None]:
        """Collect the root logger's lines and flush them while the service runs."""
        root = logging.getLogger()
        root.addHandler(self)
        flushing = asyncio.create_task(self.run(), name=f"{self._service}-recent-logs")
        try:
            yield
        finally:
            flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushing
            root.removeHandler(self)
            with contextlib.suppress(*REDIS_FAILURES):
                await self.flush_once()


_line_decoder = msgspec.json.Decoder(dict[str, Any])
_BASE_FIELDS = frozenset({"time", "level", "service", "instance", "logger", "message"})


async def read_recent_logs(
    redis: Redis, services: Sequence[str], *, min_level: str = "DEBUG", limit: int = 200
) -> list[LogLine]:
    """The newest `limit` lines of these services at `min_level` or above, newest first."""
    floor = LEVELS.index(min_level)
    lines: list[LogLine] = []
    async with redis.pipeline(transaction=False) as pipe:
        for service in services:
            pipe.xrevrange(log_stream(service), count=KEPT_LINES)
        answers: list[Any] = await pipe.execute()
    for answer in answers:
        for entry_id, fields in answer:
            raw = _line_decoder.decode(fields[DATA_FIELD.encode()])
            level = str(raw.get("level", "INFO"))
            if level in LEVELS and LEVELS.index(level) < floor:
                continue
            lines.append(
                LogLine(
                    id=entry_id.decode(),
                    time=str(raw.get("time", "")),
                    level=level,
                    service=str(raw.get("service", "")),
                    instance=str(raw.get("instance", "")),
                    logger=str(raw.get("logger", "")),
                    message=str(raw.get("message", "")),
                    fields={k: v for k, v in raw.items() if k not in _BASE_FIELDS},
                )
            )
    lines.sort(key=lambda line: entry_order(line.id), reverse=True)
    return lines[:limit]
