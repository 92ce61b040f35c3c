"""JSON log lines to stdout, one shape for every service, with secrets blanked."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# A WebSocket handshake's URL carries the access token; uvicorn logs that URL.
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"']+")
# A bearer token or a URL's password must never reach a log line either.
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+(@)")


# What the code running now is about (job_id, user_id): added to every line it logs.
_bound: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_fields", default=MappingProxyType({})
)


@contextlib.contextmanager
def bound_to_logs(**fields: str) -> Iterator[None]:
    """Add these fields to every log line written inside the block (and the tasks it starts)."""
    token = _bound.set({**_bound.get(), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def bind_to_logs(**fields: str) -> None:
    """Add these fields to every later log line of the current task (a request's, say)."""
    _bound.set({**_bound.get(), **fields})


class ContextFilter(logging.Filter):
    """Adds the bound fields and the current trace and span ids to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate; never drops a record."""
        for name, value in _bound.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


class SecretRedactingFilter(logging.Filter):
    """Blanks tokens and URL passwords in a record's message; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message when it carries a secret."""
        message = record.getMessage()
        redacted = _TOKEN_IN_QUERY.sub(r"\1[redacted]", message)
        redacted = _BEARER.sub(r"\1[redacted]", redacted)
        redacted = _URL_PASSWORD.sub(r"\1[redacted]\2", redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def json_formatter(service: str) -> logging.Formatter:
    """The one shape of a log line: time, level, logger, message, service and any extras."""
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
        # uvicorn repeats each message with terminal colours in `color_message`.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        timestamp=False,
    )


def configure_logging(service: str, level: str) -> None:
    """Send every logger's records, ours and the libraries', as JSON lines to stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter(service))
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretRedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn installs its own handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
