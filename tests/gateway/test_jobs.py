"""`/v1/jobs` against a real Redis: auth, validation as problem+json, enqueue and read back."""

from __future__ import annotations

import msgspec
import pytest
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from devstack.tokens import TokenFactory
from gateway.app import Settings, create_app
from gateway.auth import Principal
from gateway.jobs import _may_tag
from gateway.subscriptions import EntityKindPolicy
from shared.clock import now_ms
from shared.contracts.codec import envelope_decoder, event_decoder
from shared.contracts.jobs import JobEnvelope
from shared.settings import RedisSettings
from shared.streams import QueueKeys
from tests.api import PROBLEM, Client, bearer
from tests.streams import stream_entries


async def test_a_valid_job_is_accepted_and_lands_on_its_queues_stream(
    client: Client,
    redis: Redis,
    make_token: TokenFactory,
) -> None:
    answer = await client.post(
        "/v1/jobs",
        json={"type": "demo.echo", "payload": {"text": "hi"}},
        headers=bearer(make_token("alice")),
    )

    assert answer.status_code == 202
    job_id = answer.json()["id"]
    assert answer.headers["location"] == f"/v1/jobs/{job_id}"
    [(_entry, data)] = await stream_entries(redis, QueueKeys("default").stream)
    envelope = envelope_decoder.decode(data)
    assert (envelope.id, envelope.owner, envelope.type) == (job_id, "alice", "demo.echo")
    assert bytes(envelope.payload) == b'{"text":"hi"}'
    metrics = (await client.get("/metrics")).text
    assert 'conduit_jobs_enqueued_total{queue="default",type="demo.echo"} 1.0' in metrics


async def test_the_owner_reads_a_queued_job(
    client: Client,
    make_token: TokenFactory,
) -> None:
    headers = bearer(make_token("alice"))
    job_id = (
        await client.post(
            "/v1/jobs", json={"type": "demo.echo", "payload": {"text": "x"}}, headers=headers
        )
    ).json()["id"]

    answer = await client.get(f"/v1/jobs/{job_id}", headers=headers)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["id"], body["state"], body["owner"], body["attempt"]) == (
        job_id,
        "queued",
        "alice",
        0,
    )


async def test_another_user_is_forbidden_and_an_admin_may_read(
    client: Client,
    make_token: TokenFactory,
) -> None:
    job_id = (
        await client.post(
            "/v1/jobs",
            json={"type": "demo.echo", "payload": {"text": "x"}},
            headers=bearer(make_token("alice")),
        )
    ).json()["id"]

    other = await client.get(f"/v1/jobs/{job_id}", headers=bearer(make_token("bob")))
    admin = await client.get(f"/v1/jobs/{job_id}", headers=bearer(make_token("root", "ADMIN")))

    # Requests are counted per route, not per job id.
    metrics = (await client.get("/metrics")).text
    assert job_id not in metrics
    assert 'path="/v1/jobs/{job_id}"' in metrics
    assert other.status_code == 403
    assert other.headers["content-type"].startswith(PROBLEM)
    assert admin.status_code == 200


async def test_an_unknown_job_is_404_problem(
    client: Client,
    make_token: TokenFactory,
) -> None:
    answer = await client.get("/v1/jobs/nope", headers=bearer(make_token("alice")))
    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:conduit:problem:not-found"


async def test_a_repeated_idempotency_key_returns_the_same_job(
    client: Client,
    redis: Redis,
    make_token: TokenFactory,
) -> None:
    headers = bearer(make_token("alice")) | {"Idempotency-Key": "order-42"}
    body = {"type": "demo.echo", "payload": {"text": "once"}}

    first = await client.post("/v1/jobs", json=body, headers=headers)
    second = await client.post("/v1/jobs", json=body, headers=headers)

    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert await redis.xlen(QueueKeys("default").stream) == 1


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "No JWT token"),
        ({"Authorization": "Bearer not-a-jwt"}, "Invalid token"),
    ],
)
async def test_a_request_without_a_valid_token_is_401_problem(
    client: Client,
    headers: dict[str, str],
    detail: str,
) -> None:
    answer = await client.post("/v1/jobs", json={"type": "demo.echo"}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert detail in answer.json()["detail"]
    # Refused requests are requests too: the 5xx and 4xx rates in Prometheus must see them.
    metrics = (await client.get("/metrics")).text
    assert 'path="/v1/jobs",status_code="401"' in metrics


async def test_a_token_with_an_unknown_role_is_refused(
    client: Client,
    make_token: TokenFactory,
) -> None:
    answer = await client.get("/v1/jobs/x", headers=bearer(make_token("eve", "ROOT")))
    assert answer.status_code == 401


async def test_an_expired_token_is_refused(
    client: Client,
    make_token: TokenFactory,
) -> None:
    answer = await client.get("/v1/jobs/x", headers=bearer(make_token("alice", ttl_s=-60)))
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"type": "demo.nope", "payload": {}}, 422, "unknown job type"),
        ({"type": "demo.echo", "payload": {"txt": "x"}}, 422, "invalid payload"),
        ({"type": "demo.echo", "payload": {"text": 5}}, 422, "invalid payload"),
        ({"type": "demo.echo", "payload": {"text": "x"}, "queue": "nope"}, 422, "unknown queue"),
        ({"type": "demo.echo", "payload": {"text": "x"}, "max_attempts": 0}, 400, "Validation"),
        ({"payload": {}}, 400, "Validation"),
        (
            {"type": "demo.echo", "payload": {"text": "x"}, "callback_url": "file:///etc/passwd"},
            400,
            "Validation",
        ),
        ({"type": 7}, 400, "Validation"),
    ],
)
async def test_bad_input_is_a_clear_problem_and_enqueues_nothing(
    client: Client,
    redis: Redis,
    make_token: TokenFactory,
    *,
    body: dict[str, object],
    status: int,
    says: str,
) -> None:
    answer = await client.post("/v1/jobs", json=body, headers=bearer(make_token("alice")))

    assert answer.status_code == status
    assert answer.headers["content-type"].startswith(PROBLEM)
    problem = answer.json()
    assert problem["type"].startswith("urn:conduit:problem:")
    assert says in problem["detail"]
    assert await redis.exists(QueueKeys("default").stream) == 0


async def test_malformed_json_is_400_problem(
    client: Client,
    make_token: TokenFactory,
) -> None:
    answer = await client.post(
        "/v1/jobs",
        content=b"{not json",
        headers=bearer(make_token("alice")) | {"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith(PROBLEM)


async def test_probes_metrics_and_schema_are_public(client: Client) -> None:
    assert (await client.get("/livez")).json() == {"status": "pass"}
    assert (await client.get("/readyz")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert "conduit_gateway" in metrics
    assert "conduit_jobs_enqueued_total" in metrics
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/v1/jobs" in schema["paths"]
    assert "/v1/jobs/{job_id}" in schema["paths"]


async def test_readyz_and_job_creation_are_503_while_redis_is_down(
    gateway_settings: Settings, make_token: TokenFactory
) -> None:
    settings = msgspec.structs.replace(
        gateway_settings, redis=RedisSettings(url="redis://127.0.0.1:1/0")
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        answer = await client.get("/readyz")
        posted = await client.post(
            "/v1/jobs",
            json={"type": "demo.echo", "payload": {"text": "hi"}},
            headers=bearer(make_token("alice")),
        )
    assert answer.status_code == 503
    assert answer.json()["status"] == "fail"
    # Not a 500: the client is told to come back, in problem+json.
    assert (posted.status_code, posted.headers["content-type"]) == (503, PROBLEM)
    assert posted.headers["retry-after"] == "1"


async def test_a_delayed_job_waits_in_the_delayed_set_until_it_is_due(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    headers = bearer(make_token("alice"))
    before = now_ms()
    answer = await client.post(
        "/v1/jobs",
        json={"type": "demo.echo", "payload": {"text": "later"}, "delay_s": 60},
        headers=headers,
    )
    job_id = answer.json()["id"]

    job = (await client.get(f"/v1/jobs/{job_id}", headers=headers)).json()
    assert job["state"] == "delayed"
    assert await redis.xlen(QueueKeys("default").stream) == 0
    due = await redis.zscore(QueueKeys("default").delayed, job_id)
    assert due is not None
    assert before + 60_000 <= due <= now_ms() + 60_000


async def test_run_at_in_the_past_runs_now_and_without_a_zone_is_refused(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    headers = bearer(make_token("alice"))
    body = {"type": "demo.echo", "payload": {"text": "x"}}
    past = await client.post(
        "/v1/jobs", json=body | {"run_at": "2020-01-01T00:00:00Z"}, headers=headers
    )
    naive = await client.post(
        "/v1/jobs", json=body | {"run_at": "2030-01-01T00:00:00"}, headers=headers
    )
    both = await client.post(
        "/v1/jobs", json=body | {"run_at": "2030-01-01T00:00:00Z", "delay_s": 5}, headers=headers
    )

    assert past.status_code == 202
    assert await redis.xlen(QueueKeys("default").stream) == 1
    assert (naive.status_code, both.status_code) == (400, 400)
    assert "time zone" in str(naive.json())
    assert "not both" in str(both.json())


async def test_the_owner_cancels_a_waiting_job_and_cannot_cancel_it_twice(
    client: Client, make_token: TokenFactory
) -> None:
    headers = bearer(make_token("alice"))
    job_id = (
        await client.post(
            "/v1/jobs",
            json={"type": "demo.echo", "payload": {"text": "x"}, "delay_s": 60},
            headers=headers,
        )
    ).json()["id"]

    other = await client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(make_token("bob")))
    cancelled = await client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)
    again = await client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)
    missing = await client.post("/v1/jobs/nope/cancel", headers=headers)

    assert other.status_code == 403
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert again.status_code == 409
    assert again.json()["type"] == "urn:conduit:problem:conflict"
    assert missing.status_code == 404


async def test_a_high_priority_job_lands_on_its_queues_high_stream(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    answer = await client.post(
        "/v1/jobs",
        json={"type": "demo.echo", "payload": {"text": "urgent"}, "priority": "high"},
        headers=bearer(make_token("alice")),
    )

    assert answer.status_code == 202
    keys = QueueKeys("default")
    assert await redis.xlen(keys.stream_of("high")) == 1
    assert await redis.exists(keys.stream) == 0
    job = (
        await client.get(f"/v1/jobs/{answer.json()['id']}", headers=bearer(make_token("alice")))
    ).json()
    assert job["priority"] == "high"


async def test_a_job_about_an_entity_tells_that_entitys_room(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    headers = bearer(make_token("alice"))

    answer = await client.post(
        "/v1/jobs",
        json={"type": "demo.echo", "payload": {"text": "x"}, "entity": "order:42"},
        headers=headers,
    )
    malformed = await client.post(
        "/v1/jobs", json={"type": "demo.echo", "entity": "order 42"}, headers=headers
    )

    assert answer.status_code == 202
    job = (await client.get(f"/v1/jobs/{answer.json()['id']}", headers=headers)).json()
    assert job["entity"] == "order:42"
    [(_entry, data)] = await stream_entries(redis, QueueKeys("default").events)
    assert event_decoder.decode(data).rooms == ("user:alice", "role:ADMIN", "entity:order:42")
    assert (malformed.status_code, malformed.headers["content-type"]) == (400, PROBLEM)


def test_only_who_may_watch_an_entity_may_tag_a_job_with_it() -> None:
    policy = EntityKindPolicy(open_kinds={"order"})
    user = Principal(sub="alice", role="USER")
    envelope = JobEnvelope(
        id="j",
        type="demo.echo",
        queue="default",
        owner="alice",
        max_attempts=1,
        enqueued_at_ms=0,
        entity="invoice:7",
        payload=msgspec.Raw(b"{}"),
    )

    _may_tag(user, msgspec.structs.replace(envelope, entity="order:1"), policy)
    _may_tag(Principal(sub="root", role="ADMIN"), envelope, policy)
    with pytest.raises(ProblemDetailsException) as refused:
        _may_tag(user, envelope, policy)
    assert refused.value.status_code == 403
