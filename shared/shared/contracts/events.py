"""Job lifecycle events, written to a queue's events stream and pushed to WebSocket rooms."""

from __future__ import annotations

from typing import Any

import msgspec


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A failure as users see it (`message`) and as admins see it (`detail`)."""

    message: str
    detail: str = ""


class _JobEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="event"):
    v: int = 1
    job_id: str
    type: str
    queue: str
    owner: str
    rooms: tuple[str, ...]
    at_ms: int
    # The trace context of the step that wrote the event (W3C `traceparent`), when traced.
    trace: dict[str, str] = msgspec.field(default_factory=dict)


class JobQueued(_JobEvent, frozen=True, kw_only=True, tag="job.queued"):
    """The job was accepted and waits on its queue, or until `run_at_ms` when it is delayed."""

    run_at_ms: int | None = None


class JobStarted(_JobEvent, frozen=True, kw_only=True, tag="job.started"):
    """A worker began an attempt."""

    attempt: int


class JobProgressed(_JobEvent, frozen=True, kw_only=True, tag="job.progress"):
    """The running attempt reported progress, from 0 to 1."""

    attempt: int
    progress: float
    message: str = ""


class JobRetrying(_JobEvent, frozen=True, kw_only=True, tag="job.retrying"):
    """An attempt failed; the next one is due at `retry_at_ms`."""

    attempt: int
    retry_at_ms: int
    error: ErrorInfo


class JobCompleted(_JobEvent, frozen=True, kw_only=True, tag="job.completed"):
    """The job finished; `result` is what its handler returned."""

    attempt: int
    result: Any = None


class JobDeadLettered(_JobEvent, frozen=True, kw_only=True, tag="job.dead_lettered"):
    """The job will not run again: its attempts ran out or it could not be run at all."""

    attempt: int
    error: ErrorInfo


class JobCancelled(_JobEvent, frozen=True, kw_only=True, tag="job.cancelled"):
    """The job was cancelled before it ran; it will not run."""

    by: str


JobEvent = (
    JobQueued
    | JobStarted
    | JobProgressed
    | JobRetrying
    | JobCompleted
    | JobDeadLettered
    | JobCancelled
)
