"""Parameters more than one route reads, checked and converted once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.params import PathParameter

from gateway.problems import problem
from shared.settings import QueueSettings

# A queue named in a path: 1-64 characters, as QueueSettings allows.
QueueName = Annotated[str, PathParameter(max_length=64)]


def known_queue(name: str, queues: QueueSettings, *, status: int = 404) -> str:
    """The queue's name if it is configured; else 404 for a path, 400 for a filter."""
    if name not in queues.names:
        raise problem(status, f"no queue {name!r}", known_queues=list(queues.names))
    return name


def epoch_ms(moment: datetime | None) -> int | None:
    """A time filter as epoch ms; 400 for a time without a zone, which would be ambiguous."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise problem(400, "times need a time zone, e.g. 2026-11-23T12:00:00Z")
    ms = round(moment.timestamp() * 1000)
    if ms < 0:
        raise problem(400, f"{moment.isoformat()} is before 1970: no job is that old")
    return ms
