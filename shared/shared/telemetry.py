"""Tracing: one trace follows a job from the REST call through the worker to the WebSocket push.

The trace context travels inside the messages themselves (W3C `traceparent` in the job
envelope's and each event's `trace` field), because jobs and events are written by Lua scripts,
not published through a broker that would carry headers.

Spans are exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise no provider is installed and every span
is OpenTelemetry's no-op, which costs next to nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

tracer = trace.get_tracer("conduit")


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Export this process's spans over OTLP when an endpoint is configured; True if so."""
    env = os.environ if environ is None else environ
    if not any(env.get(variable) for variable in _ENDPOINT_VARIABLES):
        return False
    # Imported here: the exporter pulls in protobuf, which a process without tracing never needs.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    provider = TracerProvider(resource=Resource.create({"service.name": f"conduit-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def current_trace() -> dict[str, str]:
    """The current span's context as message fields (`traceparent`); empty outside a span."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)
    return carrier


def trace_context(fields: Mapping[str, str]) -> Context | None:
    """The context a message carries, to continue its trace; None when it carries none."""
    if not fields:
        return None
    return propagate.extract(dict(fields))
