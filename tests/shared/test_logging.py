"""Log lines are JSON with the service's name, and never carry a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from shared.logging import SecretRedactingFilter, configure_logging


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
