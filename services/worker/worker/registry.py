"""Job types the worker can run: each a payload contract from shared and a handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from shared.contracts.commands import INTERNAL_JOB_PAYLOADS, JOB_PAYLOADS
from worker.retry import RetryPolicy


class JobError(Exception):
    """A failure whose message is fit to show the job's owner; retried like any other."""


class PermanentJobError(JobError):
    """A failure that no retry can fix: the job goes straight to the dead letters."""


class JobContext(Protocol):
    """What a handler knows of the attempt it runs in."""

    @property
    def job_id(self) -> str:
        """The job's id: the key for making side effects idempotent."""

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""

    async def progress(self, value: float, message: str = "") -> None:
        """Report progress from 0 to 1; the owner sees it live."""


Handler = Callable[[Any, JobContext], Awaitable[Any]]


class JobType(msgspec.Struct, frozen=True, kw_only=True):
    """A job type bound to its handler, with its retry policy when it has its own."""

    name: str
    payload: type[msgspec.Struct]
    handler: Handler
    retry: RetryPolicy | None = None


class UnknownJobTypeError(LookupError):
    """No payload contract in shared names this job type."""


class Registry:
    """Job types by name."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def add(self, name: str, handler: Handler, *, retry: RetryPolicy | None = None) -> None:
        """Bind `handler` to the job type `name`, whose payload contract lives in shared."""
        payloads = {**JOB_PAYLOADS, **INTERNAL_JOB_PAYLOADS}
        if name not in payloads:
            raise UnknownJobTypeError(f"no payload contract for job type {name!r} in shared")
        self._types[name] = JobType(name=name, payload=payloads[name], handler=handler, retry=retry)

    def get(self, name: str) -> JobType | None:
        """The job type called `name`, if this worker runs it."""
        return self._types.get(name)
