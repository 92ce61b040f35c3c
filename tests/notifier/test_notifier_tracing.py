"""One trace follows a job: the gateway's request, the worker's run, the notifier's push.

The three run in this process with one in-memory exporter, talking through the test's Redis
as they do in production: the trace context travels inside the job and its events.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from devstack.tokens import TokenFactory
from gateway.app import Settings, create_app
from shared.contracts.events import JobCompleted
from shared.jobstore import JobStore
from shared.settings import DatabaseSettings, JwtSettings, QueueSettings, RedisSettings
from shared.streams import Lane, QueueKeys
from tests.api import bearer
from tests.notifier.conftest import Subscribe
from tests.notifier.wire import next_push
from tests.streams import read_group
from worker.app import create_registry
from worker.retry import RetryPolicy
from worker.runner import JobRunner


class _WhileRecording(SimpleSpanProcessor):
    """Keeps spans only while a test asks for them: the provider stays for the whole session."""

    recording = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


@pytest.fixture(scope="session")
def traced() -> tuple[_WhileRecording, InMemorySpanExporter]:
    """This process's tracer provider, set once: OpenTelemetry refuses to replace it."""
    exporter = InMemorySpanExporter()
    processor = _WhileRecording(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return processor, exporter


@pytest.fixture
def spans(
    traced: tuple[_WhileRecording, InMemorySpanExporter],
) -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test."""
    processor, exporter = traced
    exporter.clear()
    processor.recording = True
    yield exporter
    processor.recording = False
    exporter.clear()


def parent_id(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


async def test_one_trace_spans_gateway_worker_and_notifier(
    *,
    spans: InMemorySpanExporter,
    subscribe: Subscribe,
    redis: Redis,
    store: JobStore,
    redis_url: str,
    database_url: str,
    jwt_secret: str,
    make_token: TokenFactory,
) -> None:
    gateway = create_app(
        Settings(
            redis=RedisSettings(url=redis_url),
            database=DatabaseSettings(url=database_url),
            queues=QueueSettings(names=("default",)),
            jwt=JwtSettings(secret=jwt_secret),
        )
    )
    await store.ensure_group(Lane("default"))
    async with subscribe("alice") as socket, AsyncTestClient(app=gateway) as client:
        posted = await client.post(
            "/v1/jobs",
            json={"type": "demo.echo", "payload": {"text": "traced"}},
            headers=bearer(make_token("alice")),
        )
        job_id = posted.json()["id"]
        runner = JobRunner(store, create_registry(), RetryPolicy(), consumer="t", max_deliveries=5)
        [(entry_id, body)] = await read_group(redis, QueueKeys("default").stream, "t")
        await runner.run(Lane("default"), entry_id, body)
        while True:
            push = await next_push(socket)
            if isinstance(push.event, JobCompleted):
                break

    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    by_name = {span.name: span for span in finished}
    request = next(span for span in finished if span.kind is SpanKind.SERVER)
    enqueue, run, pushed = (
        by_name["enqueue default"],
        by_name["run demo.echo"],
        by_name["push job.completed"],
    )
    trace_ids = {span.context.trace_id for span in (request, enqueue, run, pushed)}
    assert len(trace_ids) == 1, finished
    # Each step is the child of the one before it: request -> enqueue -> run -> push.
    assert parent_id(enqueue) == request.context.span_id
    assert parent_id(run) == enqueue.context.span_id
    assert parent_id(pushed) == run.context.span_id
    assert dict(run.attributes or {})["conduit.job.id"] == job_id
