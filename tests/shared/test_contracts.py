"""Every message survives an encode/decode round trip, and the union dispatches on its tag."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from shared.contracts.codec import (
    dead_letter_decoder,
    encoder,
    envelope_decoder,
    event_decoder,
)
from shared.contracts.events import (
    ErrorInfo,
    JobCompleted,
    JobDeadLettered,
    JobEvent,
    JobProgressed,
    JobQueued,
    JobRetrying,
    JobStarted,
)
from shared.contracts.jobs import AttemptError, DeadLetter, JobEnvelope

BASE: dict[str, Any] = {
    "job_id": "j1",
    "type": "demo.echo",
    "queue": "default",
    "owner": "alice",
    "rooms": ("user:alice", "role:ADMIN"),
    "at_ms": 1,
}
ERROR = ErrorInfo(message="friendly", detail="Traceback ...")

EVENTS: list[JobEvent] = [
    JobQueued(**BASE),
    JobStarted(**BASE, attempt=1),
    JobProgressed(**BASE, attempt=1, progress=0.5, message="half"),
    JobRetrying(**BASE, attempt=1, retry_at_ms=10, error=ERROR),
    JobCompleted(**BASE, attempt=2, result={"text": "hi"}),
    JobDeadLettered(**BASE, attempt=4, error=ERROR),
]


def envelope() -> JobEnvelope:
    return JobEnvelope(
        id="j1",
        type="demo.echo",
        queue="default",
        owner="alice",
        max_attempts=4,
        enqueued_at_ms=1,
        errors=(AttemptError(attempt=1, message="m", detail="d", at_ms=2),),
        trace={"traceparent": "00-abc-def-01"},
        payload=msgspec.Raw(b'{"text":"hi"}'),
    )


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_every_event_round_trips_through_the_union(event: JobEvent) -> None:
    assert event_decoder.decode(encoder.encode(event)) == event


def test_events_carry_their_kind_in_the_event_field() -> None:
    assert msgspec.json.decode(encoder.encode(EVENTS[0]))["event"] == "job.queued"


def test_envelope_round_trips_with_its_payload_untouched() -> None:
    decoded = envelope_decoder.decode(encoder.encode(envelope()))
    assert bytes(decoded.payload) == b'{"text":"hi"}'
    assert decoded.errors == envelope().errors
    assert decoded.trace == envelope().trace


def test_dead_letter_round_trips_with_the_job_or_the_raw_entry() -> None:
    with_job = DeadLetter(reason="r", job=envelope(), source_entry="1-0", at_ms=3)
    raw_only = DeadLetter(reason="undecodable", raw="garbage", source_entry="2-0", at_ms=4)
    for letter in (with_job, raw_only):
        decoded = dead_letter_decoder.decode(encoder.encode(letter))
        assert decoded.reason == letter.reason
        assert decoded.raw == letter.raw
        assert (decoded.job is None) == (letter.job is None)


def test_an_envelope_from_a_newer_producer_with_extra_fields_still_decodes() -> None:
    newer = msgspec.json.decode(encoder.encode(envelope()))
    newer["added_later"] = True
    assert envelope_decoder.decode(msgspec.json.encode(newer)).id == "j1"
