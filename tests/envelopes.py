"""Jobs as a test puts them on a queue directly, without the gateway: one factory for all."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from shared.clock import now_ms
from shared.contracts.jobs import JobEnvelope, Priority


def job_envelope(
    job_type: str = "demo.echo",
    payload: Any = None,
    *,
    queue: str = "default",
    priority: Priority = "normal",
    owner: str = "alice",
    max_attempts: int = 3,
    delay_ms: int = 0,
) -> JobEnvelope:
    """A new job of `job_type` (payload `{"text": "hi"}` unless given), due in `delay_ms`."""
    now = now_ms()
    return JobEnvelope(
        id=str(uuid.uuid4()),
        type=job_type,
        queue=queue,
        priority=priority,
        owner=owner,
        max_attempts=max_attempts,
        enqueued_at_ms=now,
        due_at_ms=now + delay_ms,
        payload=msgspec.Raw(msgspec.json.encode({"text": "hi"} if payload is None else payload)),
    )
