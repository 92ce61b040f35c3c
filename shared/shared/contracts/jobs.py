"""Jobs: what a client submits, what travels on a queue's stream, and what a client reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from shared.contracts.commands import check_callback_url
from shared.contracts.ws import is_entity_room

JobState = Literal["delayed", "queued", "active", "retrying", "completed", "dead", "cancelled"]
# The owner of the jobs Conduit makes itself: code-defined repeatables and outcome callbacks.
SYSTEM_OWNER = "system"
Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
# States a job can be cancelled from: it waits, no attempt holds it.
CANCELLABLE_STATES: frozenset[JobState] = frozenset({"delayed", "queued", "retrying"})
# One first attempt and three retries: the default schedule waits 10 s, 60 s and 5 min.
DEFAULT_MAX_ATTEMPTS = 4
FINISHED_STATES: frozenset[JobState] = frozenset({"completed", "dead", "cancelled"})


class JobSubmission(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/jobs`."""

    type: Annotated[str, msgspec.Meta(max_length=100)]
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: str | None = None
    priority: Priority = "normal"
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=25)] | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None
    delay_s: Annotated[float, msgspec.Meta(ge=0, le=365 * 86_400)] | None = None
    run_at: datetime | None = None
    # Where the outcome is POSTed, signed, once the job completes or is dead-lettered.
    callback_url: str | None = None
    # What the job is about, `<kind>:<id>` (`order:42`): its events also go to the room
    # `entity:order:42`, for whoever watches that entity.
    entity: Annotated[str, msgspec.Meta(max_length=200)] | None = None

    def __post_init__(self) -> None:
        if self.callback_url is not None:
            check_callback_url(self.callback_url)
        if self.entity is not None and not is_entity_room(f"entity:{self.entity}"):
            raise ValueError("entity must be <kind>:<id>, e.g. order:42")
        if self.delay_s is not None and self.run_at is not None:
            raise ValueError("give delay_s or run_at, not both")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("run_at needs a time zone, e.g. 2026-11-23T12:00:00Z")

    def due_ms(self, now_ms: int) -> int:
        """When the job may first run: now, after `delay_s`, or at `run_at`."""
        if self.delay_s is not None:
            return now_ms + round(self.delay_s * 1000)
        if self.run_at is not None:
            return max(now_ms, round(self.run_at.timestamp() * 1000))
        return now_ms


class JobAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to an accepted job."""

    id: str


class AttemptError(msgspec.Struct, frozen=True, kw_only=True):
    """Why one attempt failed: a message fit for the owner, the detail for admins."""

    attempt: int
    message: str
    detail: str = ""
    at_ms: int


class JobEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """One job on a queue's stream: routing and bookkeeping apart from the payload.

    A retry re-enqueues the envelope with the next attempt number and the errors so far, so a
    worker holds a job's whole history without reading it back.
    """

    v: int = 1
    id: str
    type: str
    queue: str
    priority: Priority = "normal"
    owner: str
    attempt: int = 1
    max_attempts: int
    enqueued_at_ms: int
    # When the job may first run; later than `enqueued_at_ms` for a delayed job.
    due_at_ms: int = 0
    timeout_s: float | None = None
    callback_url: str | None = None
    # `<kind>:<id>`: the job's events also go to the room `entity:<kind>:<id>`.
    entity: str | None = None
    errors: tuple[AttemptError, ...] = ()
    trace: dict[str, str] = msgspec.field(default_factory=dict)
    payload: msgspec.Raw


class JobOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a callback URL receives once a job has finished."""

    v: int = 1
    job_id: str
    type: str
    queue: str
    state: Literal["completed", "dead"]
    attempt: int
    result: Any = None
    error: str | None = None
    finished_at_ms: int


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of a dead-letter stream: the job (or the raw entry), why, and its history."""

    v: int = 1
    reason: str
    job: JobEnvelope | None = None
    raw: str | None = None
    source_entry: str
    errors: tuple[AttemptError, ...] = ()
    at_ms: int


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """A job as `GET /v1/jobs/{id}` shows it."""

    id: str
    type: str
    queue: str
    priority: Priority = "normal"
    owner: str
    entity: str | None = None
    state: JobState
    attempt: int
    max_attempts: int
    progress: float | None = None
    payload: Any = None
    result: Any = None
    errors: tuple[AttemptError, ...] = ()
    created_at_ms: int
    started_at_ms: int | None = None
    finished_at_ms: int | None = None


# How many jobs one `POST /v1/jobs:batch` takes.
MAX_BATCH = 1_000


class JobBatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/jobs:batch`: jobs queued together, all or none, on one queue."""

    jobs: Annotated[tuple[JobSubmission, ...], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class BatchAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to an accepted batch: the jobs' ids, in the order they were given."""

    ids: tuple[str, ...]
