"""The gateway's own settings (`GATEWAY_*`): its limits and which browser origins may call it."""

from __future__ import annotations

import re
from typing import ClassVar

import msgspec

from shared.ratelimit import RateLimit
from shared.settings import SettingsError

# A batch of 1,000 jobs must fit in one body: 4 MiB leaves about 4 KB a job, which is room for
# a payload of references and parameters (job payloads are not the place for documents), while
# one request still decodes in milliseconds and a handful in flight cost little memory.
DEFAULT_MAX_BODY_BYTES = 4 * 2**20
_ORIGIN = re.compile(r"\*|https?://[^/\s?#]+")


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Per-user job rate, request body size, and the CORS allow-list."""

    env_prefix: ClassVar[str] = "GATEWAY_"

    # Jobs a user may create a second, on average, across every queue and gateway instance.
    job_rate_per_user: float = 50.0
    # Jobs a user may create at once after a pause: at least the largest batch, or such a
    # batch could never be accepted.
    job_burst_per_user: int = 1000
    # Origins of browser frontends allowed to call the API (`https://app.example.com`);
    # empty: no CORS headers at all. A `*` inside an origin matches anything there.
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        try:
            RateLimit(per_s=self.job_rate_per_user, burst=self.job_burst_per_user)
        except ValueError as exc:
            raise SettingsError(f"GATEWAY_JOB_RATE_PER_USER / _BURST_PER_USER: {exc}") from exc
        for origin in self.cors_origins:
            # A browser sends `scheme://host[:port]`: a path or a trailing slash never matches.
            if not _ORIGIN.fullmatch(origin):
                raise SettingsError(
                    f"GATEWAY_CORS_ORIGINS: {origin!r} is not an origin like https://host[:port]"
                )
        if self.max_body_bytes < 1024:
            raise SettingsError("GATEWAY_MAX_BODY_BYTES must be at least 1024")

    @property
    def job_rate_limit(self) -> RateLimit:
        """The per-user limit on job creation."""
        return RateLimit(per_s=self.job_rate_per_user, burst=self.job_burst_per_user)
