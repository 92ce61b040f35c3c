"""Callbacks against a real local HTTP receiver: signed POSTs, and which failures are retried."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pytest
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.commands import (
    CALLBACK_JOB_TYPE,
    INTERNAL_JOB_PAYLOADS,
    JOB_PAYLOADS,
    MAX_CALLBACK_URL_CHARS,
    Callback,
)
from shared.contracts.jobs import JobEnvelope, JobView
from shared.jobstore import JobStore
from shared.signing import SIGNATURE_HEADER, verify
from shared.streams import Lane
from tests.streams import read_group
from worker.app import create_registry
from worker.handlers.callbacks import (
    CALLBACK_RETRY,
    CallbackFailedError,
    CallbackRefusedError,
    CallbackSender,
    register,
)
from worker.registry import JobError, PermanentJobError, Registry
from worker.retry import RetryPolicy
from worker.runner import JobRunner

SECRET = "callback-secret-for-tests-0123456789"
OUTCOME = {"job_id": "job-1", "type": "demo.echo", "state": "completed", "result": {"text": "hi"}}
REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many"}


@dataclass(frozen=True)
class Received:
    """One request the receiver got, with whether its signature verified."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server on a free port that answers every POST with `status`.

    It checks each signature with `verify`, as a real receiver would, and answers 401 to a bad one.
    """

    secret: str = SECRET
    status: int = 200
    answer: bytes = b'{"ok":true}'
    extra_headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    requests: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = field(default=None, init=False)
    _release: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/hooks/conduit") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.gather(*self._handlers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._exchange(reader, writer)
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, path, _version = request_line.split(" ")
        headers = {
            name.strip().lower(): value.strip()
            for name, _sep, value in (line.partition(":") for line in lines if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        verified = verify(
            self.secret, headers.get(SIGNATURE_HEADER.lower(), ""), body, now_s=int(time.time())
        )
        self.requests.append(Received(method, path, headers, body, verified))
        if self.hang:
            await self._release.wait()
            return
        status = self.status if verified else 401
        head_out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        head_out += [f"{name}: {value}" for name, value in self.extra_headers.items()]
        head_out += [f"Content-Length: {len(self.answer)}", "Connection: close", "", ""]
        writer.write("\r\n".join(head_out).encode() + self.answer)
        await writer.drain()


@dataclass(frozen=True)
class Context:
    """The JobContext of a delivery attempt, as the runner would give it."""

    job_id: str = "callback-job-1"
    attempt: int = 1

    async def progress(self, value: float, message: str = "") -> None:
        """Callbacks report no progress."""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def sender() -> AsyncIterator[CallbackSender]:
    callbacks = CallbackSender(SECRET, timeout_s=0.3)
    yield callbacks
    await callbacks.aclose()


@pytest.fixture
def closed_port() -> int:
    # Bound and closed again: nothing listens there, so a connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def callback(url: str, job_id: str = "job-1") -> Callback:
    return Callback(url=url, outcome=OUTCOME, job_id=job_id)


async def test_a_2xx_answer_delivers_the_outcome_signed_with_the_original_job_id(
    receiver: Receiver, sender: CallbackSender
) -> None:
    result = await sender.deliver(callback(receiver.url(), job_id="job-1"), Context(attempt=3))

    assert result == {"status": 200}
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/conduit")
    assert request.verified
    assert msgspec.json.decode(request.body) == OUTCOME
    assert request.headers["content-type"] == "application/json"
    assert request.headers["conduit-job-id"] == "job-1"
    assert request.headers["idempotency-key"] == "job-1"
    assert request.headers["conduit-delivery-attempt"] == "3"


async def test_a_receiver_with_another_secret_refuses_the_signature(
    receiver: Receiver,
) -> None:
    receiver.secret = "another-secret-that-the-receiver-holds"
    sender = CallbackSender(SECRET, timeout_s=0.3)
    try:
        with pytest.raises(CallbackRefusedError, match="HTTP 401"):
            await sender.deliver(callback(receiver.url()), Context())
    finally:
        await sender.aclose()
    assert not receiver.requests[0].verified


async def test_a_5xx_answer_is_retried_and_quotes_the_receiver(
    receiver: Receiver, sender: CallbackSender
) -> None:
    receiver.status = 500
    receiver.answer = b"database\n  is down"

    with pytest.raises(CallbackFailedError, match="answered HTTP 500: database is down") as caught:
        await sender.deliver(callback(receiver.url()), Context())

    assert not isinstance(caught.value, PermanentJobError)


@pytest.mark.parametrize("status", [408, 429, 503])
async def test_a_busy_or_slow_receivers_answer_is_retried(
    receiver: Receiver, sender: CallbackSender, status: int
) -> None:
    receiver.status = status

    with pytest.raises(JobError, match=f"HTTP {status}") as caught:
        await sender.deliver(callback(receiver.url()), Context())

    assert not isinstance(caught.value, PermanentJobError)


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_a_4xx_answer_is_a_permanent_refusal(
    receiver: Receiver, sender: CallbackSender, status: int
) -> None:
    receiver.status = status

    with pytest.raises(PermanentJobError, match=f"answered HTTP {status} and refused it"):
        await sender.deliver(callback(receiver.url()), Context())


async def test_a_long_answer_is_quoted_short(receiver: Receiver, sender: CallbackSender) -> None:
    receiver.status = 400
    receiver.answer = b"x" * 100_000

    with pytest.raises(CallbackRefusedError) as caught:
        await sender.deliver(callback(receiver.url()), Context())

    assert len(str(caught.value)) < 400


async def test_a_redirect_is_not_followed_and_is_a_permanent_refusal(
    receiver: Receiver, sender: CallbackSender
) -> None:
    receiver.status = 302
    receiver.extra_headers = {"Location": receiver.url("/elsewhere")}

    with pytest.raises(
        CallbackRefusedError, match=r"redirect to http://127\.0\.0\.1:\d+/elsewhere"
    ):
        await sender.deliver(callback(receiver.url()), Context())

    assert [request.path for request in receiver.requests] == ["/hooks/conduit"]


async def test_a_refused_connection_is_retried(closed_port: int, sender: CallbackSender) -> None:
    with pytest.raises(CallbackFailedError, match="could not connect") as caught:
        await sender.deliver(callback(f"http://127.0.0.1:{closed_port}/hook"), Context())

    assert not isinstance(caught.value, PermanentJobError)


async def test_a_receiver_that_never_answers_is_retried_after_the_timeout(
    receiver: Receiver, sender: CallbackSender
) -> None:
    receiver.hang = True
    started = time.monotonic()

    with pytest.raises(CallbackFailedError, match=r"did not answer within 0\.3 s"):
        await sender.deliver(callback(receiver.url()), Context())

    assert time.monotonic() - started < 5
    assert len(receiver.requests) == 1


async def test_an_error_message_leaves_out_the_urls_query_and_credentials(
    receiver: Receiver, sender: CallbackSender
) -> None:
    receiver.status = 500
    url = f"http://user:pw@127.0.0.1:{receiver.port}/hook?token=s3cret"

    with pytest.raises(CallbackFailedError) as caught:
        await sender.deliver(callback(url), Context())

    assert f"http://127.0.0.1:{receiver.port}/hook" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("secret", ["", "undecodable-\udcff-byte"])
def test_a_sender_needs_a_secret_it_can_sign_with(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        CallbackSender(secret)


def test_the_callback_payload_round_trips_through_json() -> None:
    payload = callback("https://example.com/hook")

    assert msgspec.json.decode(msgspec.json.encode(payload), type=Callback) == payload


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "example.com/hook",
        "/hook",
        "http:///hook",
        "http://example.com:99999/hook",
        "http://example.com:0/hook",
        "http://example.com/a hook",
        "http://example.com/\nhook",
        "https://example.com/" + "a" * MAX_CALLBACK_URL_CHARS,
    ],
)
def test_a_callback_url_must_be_an_absolute_http_url_of_bounded_length(url: str) -> None:
    with pytest.raises(ValueError, match=r"callback URL|Port"):
        callback(url)
    document = msgspec.json.encode({"url": url, "outcome": None, "job_id": "job-1"})
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(document, type=Callback)


def test_callbacks_are_internal_so_clients_cannot_submit_them() -> None:
    assert CALLBACK_JOB_TYPE not in JOB_PAYLOADS
    assert INTERNAL_JOB_PAYLOADS[CALLBACK_JOB_TYPE] is Callback


def test_register_binds_the_callback_type_with_its_own_retry_policy() -> None:
    registry = Registry()
    sender = CallbackSender(SECRET)
    register(registry, sender)

    job_type = registry.get(CALLBACK_JOB_TYPE)
    assert job_type is not None
    assert job_type.payload is Callback
    assert job_type.retry == CALLBACK_RETRY


# Through the runner and a real Redis: the worker's own retry and dead-letter machinery.

LANE = Lane("default")
CONSUMER = "callbacks-test"


async def run_callback_job(
    redis: Redis, store: JobStore, sender: CallbackSender, payload: object
) -> JobView:
    """Enqueue one callback job as the store will, run what the worker reads; return the job."""
    registry = Registry()
    register(registry, sender)
    runner = JobRunner(
        store, registry, RetryPolicy(schedule_s=(0.0,)), consumer=CONSUMER, max_deliveries=5
    )
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type=CALLBACK_JOB_TYPE,
        queue="default",
        owner="alice",
        max_attempts=3,
        enqueued_at_ms=now_ms(),
        payload=msgspec.Raw(msgspec.json.encode(payload)),
    )
    await store.enqueue(envelope)
    for entry_id, data in await read_group(redis, LANE.stream, CONSUMER):
        await runner.run(LANE, entry_id, data)
    view = await store.get(["default"], envelope.id)
    assert view is not None
    return view


async def test_the_worker_completes_a_delivered_callback_with_the_receivers_status(
    redis: Redis, store: JobStore, receiver: Receiver, sender: CallbackSender
) -> None:
    view = await run_callback_job(redis, store, sender, callback(receiver.url(), "original-job"))

    assert (view.state, view.result) == ("completed", {"status": 200})
    [request] = receiver.requests
    assert request.verified
    assert request.headers["idempotency-key"] == "original-job"


async def test_the_worker_parks_a_failed_delivery_for_a_retry(
    redis: Redis, store: JobStore, receiver: Receiver, sender: CallbackSender
) -> None:
    receiver.status = 503

    view = await run_callback_job(redis, store, sender, callback(receiver.url()))

    assert view.state == "retrying"
    assert "HTTP 503" in view.errors[0].message


async def test_the_worker_dead_letters_a_refused_delivery_at_once(
    redis: Redis, store: JobStore, receiver: Receiver, sender: CallbackSender
) -> None:
    receiver.status = 400

    view = await run_callback_job(redis, store, sender, callback(receiver.url()))

    assert (view.state, view.attempt) == ("dead", 1)
    assert "refused" in view.errors[0].message


async def test_the_worker_dead_letters_a_callback_payload_with_a_bad_url(
    redis: Redis, store: JobStore, sender: CallbackSender
) -> None:
    bad = {"url": "file:///etc/passwd", "outcome": None, "job_id": "original-job"}

    view = await run_callback_job(redis, store, sender, bad)

    assert (view.state, view.attempt) == ("dead", 1)
    assert "http:// or https://" in view.errors[0].message


async def deliver_all(redis: Redis, runner: JobRunner) -> int:
    """Run what the group has, again and again, until nothing new arrives."""
    delivered = 0
    while entries := await read_group(redis, LANE.stream, CONSUMER):
        for entry_id, data in entries:
            await runner.run(LANE, entry_id, data)
        delivered += len(entries)
    return delivered


@pytest.mark.parametrize(
    ("job_type", "payload", "state"),
    [
        ("demo.echo", {"text": "hi"}, "completed"),
        ("demo.fail", {"times": 5, "message": "nope"}, "dead"),
    ],
)
async def test_a_finished_jobs_outcome_reaches_its_callback_url_signed_once(
    redis: Redis,
    store: JobStore,
    receiver: Receiver,
    sender: CallbackSender,
    *,
    job_type: str,
    payload: dict[str, object],
    state: str,
) -> None:
    runner = JobRunner(
        store,
        create_registry(sender),
        RetryPolicy(schedule_s=(0.0,)),
        consumer=CONSUMER,
        max_deliveries=5,
    )
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type=job_type,
        queue="default",
        owner="alice",
        max_attempts=1,
        enqueued_at_ms=now_ms(),
        callback_url=receiver.url(),
        payload=msgspec.Raw(msgspec.json.encode(payload)),
    )
    await store.enqueue(envelope)

    # The job, then the callback job its outcome queued in the same step.
    assert await deliver_all(redis, runner) == 2

    [request] = receiver.requests
    assert request.verified
    assert request.headers["idempotency-key"] == envelope.id
    outcome = msgspec.json.decode(request.body)
    assert (outcome["job_id"], outcome["state"], outcome["type"]) == (envelope.id, state, job_type)
    if state == "completed":
        assert outcome["result"] == {"text": "hi"}
    else:
        assert "nope" in outcome["error"]
