"""The job types Conduit ships, each with the payload its handler takes.

The gateway validates a submission's payload against this catalog; the worker binds a handler to
each entry. A new job type adds its payload Struct here and its handler in the worker.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec


class Echo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`demo.echo`: returns its payload."""

    text: Annotated[str, msgspec.Meta(max_length=10_000)]


class Sleep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`demo.sleep`: sleeps, reporting progress after each step."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)]
    steps: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4


class Fail(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`demo.fail`: fails its first `times` attempts, then succeeds."""

    times: Annotated[int, msgspec.Meta(ge=0, le=100)] = 1
    message: Annotated[str, msgspec.Meta(max_length=1_000)] = "demo failure"


JOB_PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "demo.echo": Echo,
    "demo.sleep": Sleep,
    "demo.fail": Fail,
}


CALLBACK_JOB_TYPE = "conduit.callback"
MAX_CALLBACK_URL_CHARS = 2_000


def check_callback_url(url: str) -> None:
    """Raise ValueError unless `url` is an absolute http(s) URL a callback may be POSTed to."""
    if len(url) > MAX_CALLBACK_URL_CHARS:
        raise ValueError(f"a callback URL must be at most {MAX_CALLBACK_URL_CHARS} characters")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ValueError("a callback URL must not hold spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("a callback URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("a callback URL must name a host")
    # Reading the port also raises ValueError for one that is not a number from 0 to 65535.
    if parts.port == 0:
        raise ValueError("a callback URL must not name port 0")


class Callback(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`conduit.callback` (internal): POST a finished job's outcome to its callback URL.

    `outcome` is the JSON document sent; `job_id` is the finished job's id, not the id of the
    job that delivers it, so a receiver can drop duplicate deliveries.
    """

    url: str
    outcome: Any
    job_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

    def __post_init__(self) -> None:
        check_callback_url(self.url)


# Job types the platform enqueues itself; clients cannot submit them, so they are kept apart from
# JOB_PAYLOADS, which the gateway accepts.
INTERNAL_JOB_PAYLOADS: dict[str, type[msgspec.Struct]] = {
    CALLBACK_JOB_TYPE: Callback,
}
