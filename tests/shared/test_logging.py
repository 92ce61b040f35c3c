"""Log lines are JSON with the service's name and context, and never carry a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.logging import SecretRedactingFilter, bound_to_logs, configure_logging


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    ("message", "args", "expected"),
    [
        (
            '%s - "WebSocket %s" [accepted]',
            ("127.0.0.1:5000", "/ws?token=eyJ.abc.def&x=1"),
            '127.0.0.1:5000 - "WebSocket /ws?token=[redacted]&x=1" [accepted]',
        ),
        ("auth header Bearer eyJhbGciOi.x.y seen", (), "auth header Bearer [redacted] seen"),
        (
            "connecting to %s",
            ("redis://:s3cret@127.0.0.1:6379/0",),
            "connecting to redis://:[redacted]@127.0.0.1:6379/0",
        ),
        (
            "db postgresql+asyncpg://conduit:pw@db:5432/conduit",
            (),
            "db postgresql+asyncpg://conduit:[redacted]@db:5432/conduit",
        ),
    ],
)
def test_secrets_are_blanked_from_log_messages(
    message: str, args: tuple[object, ...], expected: str
) -> None:
    entry = record(message, *args)
    assert SecretRedactingFilter().filter(entry)
    assert entry.getMessage() == expected


def test_a_message_without_secrets_is_left_alone() -> None:
    entry = record("GET %s 200", "/v1/jobs/1")
    assert SecretRedactingFilter().filter(entry)
    assert (entry.msg, entry.args) == ("GET %s 200", ("/v1/jobs/1",))


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_lines_are_json_with_service_level_and_no_colour_copy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("gateway", "INFO")
    logging.getLogger("uvicorn.error").info(
        "started %s", "/ws?token=abc", extra={"color_message": "\x1b[36mstarted\x1b[0m"}
    )

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["service"] == "gateway"
    assert line["level"] == "INFO"
    assert line["message"] == "started /ws?token=[redacted]"
    assert "color_message" not in line


@pytest.mark.usefixtures("restore_root_logger")
def test_lines_carry_the_bound_job_and_user_and_the_current_trace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("worker", "INFO")
    # The context of a sampled trace, no provider needed: its ids are what the filter copies.
    span = NonRecordingSpan(
        SpanContext(trace_id=0x1234, span_id=0x56, is_remote=False, trace_flags=TraceFlags(1))
    )

    with bound_to_logs(job_id="j-1", user_id="alice"), trace.use_span(span):
        logging.getLogger("worker.runner").info("ran")
    logging.getLogger("worker.runner").info("after")

    inside, after = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    assert (inside["job_id"], inside["user_id"]) == ("j-1", "alice")
    assert (inside["trace_id"], inside["span_id"]) == (f"{0x1234:032x}", f"{0x56:016x}")
    assert not {"job_id", "user_id", "trace_id"} & set(after)
