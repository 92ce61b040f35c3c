"""The gateway's edges against a real Redis: per-user job rate, CORS allow-list, body size."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from devstack.tokens import TokenFactory
from gateway.app import Settings, create_app
from gateway.ratelimit import JobRateLimiter, retry_after_s
from gateway.settings import DEFAULT_MAX_BODY_BYTES, GatewaySettings
from shared.ratelimit import RateLimit
from shared.settings import SettingsError, from_env
from shared.streams import user_job_rate
from tests.api import PROBLEM, Client, bearer

ALLOWED = "https://app.example.com"
OTHER = "https://elsewhere.example.net"
JOB = {"type": "demo.echo", "payload": {"text": "hi"}}
# One job every 2 s on average, three at once: the fourth within a second is refused.
LIMITS = GatewaySettings(
    job_rate_per_user=0.5,
    job_burst_per_user=3,
    cors_origins=(ALLOWED,),
    max_body_bytes=4096,
)


@pytest.fixture
async def limited(gateway_settings: Settings) -> AsyncIterator[Client]:
    """The whole gateway with a small job rate, a small body limit and one allowed origin."""
    settings = msgspec.structs.replace(gateway_settings, gateway=LIMITS)
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def test_a_user_past_the_burst_gets_429_with_retry_after_and_another_user_does_not(
    limited: Client, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))
    # The limit spans queues: one user's jobs on both count against one allowance.
    accepted = [
        (await limited.post("/v1/jobs", json={**JOB, "queue": queue}, headers=alice)).status_code
        for queue in ("default", "reports", "default")
    ]

    refused = await limited.post("/v1/jobs", json=JOB, headers=alice)
    bob = await limited.post("/v1/jobs", json=JOB, headers=bearer(make_token("bob")))

    assert accepted == [202, 202, 202]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM
    # The next job is due 2 s after the first of the burst: a whole-second wait, rounded up.
    assert refused.headers["retry-after"] == "2"
    problem = refused.json()
    assert problem["type"] == "urn:conduit:problem:rate-limited"
    assert problem["status"] == 429
    assert problem["retry_after_s"] == 2
    assert bob.status_code == 202


async def test_a_refused_job_is_not_queued(
    limited: Client, redis: Redis, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))
    for _ in range(3):
        assert (await limited.post("/v1/jobs", json=JOB, headers=alice)).status_code == 202
    state_before = await redis.get(user_job_rate("alice"))

    assert (await limited.post("/v1/jobs", json=JOB, headers=alice)).status_code == 429

    assert await redis.get(user_job_rate("alice")) == state_before


async def test_an_invalid_job_spends_none_of_the_allowance(
    limited: Client, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))
    invalid = {"type": "no.such.type", "payload": {}}

    refused = [
        (await limited.post("/v1/jobs", json=invalid, headers=alice)).status_code for _ in range(5)
    ]
    accepted = [
        (await limited.post("/v1/jobs", json=JOB, headers=alice)).status_code for _ in range(3)
    ]

    assert refused == [422] * 5
    assert accepted == [202] * 3


async def test_a_preflight_from_an_allowed_origin_is_answered_with_the_cors_headers(
    limited: Client,
) -> None:
    answer = await limited.options(
        "/v1/jobs",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )

    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed_headers = answer.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key"):
        assert header in allowed_headers
    assert "access-control-allow-credentials" not in answer.headers


async def test_a_preflight_from_another_origin_gets_no_cors_headers(limited: Client) -> None:
    answer = await limited.options(
        "/v1/jobs", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    )

    assert answer.status_code >= 400
    assert "access-control-allow-origin" not in answer.headers


async def test_an_allowed_origin_can_read_the_retry_after_of_a_refusal(
    limited: Client, make_token: TokenFactory
) -> None:
    headers = {**bearer(make_token("alice")), "Origin": ALLOWED}
    for _ in range(3):
        await limited.post("/v1/jobs", json=JOB, headers=headers)

    refused = await limited.post("/v1/jobs", json=JOB, headers=headers)
    elsewhere = await limited.post("/v1/jobs", json=JOB, headers={**headers, "Origin": OTHER})

    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == ALLOWED
    exposed = refused.headers["access-control-expose-headers"]
    assert "Retry-After" in exposed
    assert "Location" in exposed
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_without_an_allow_list_no_origin_gets_cors_headers(
    client: Client, make_token: TokenFactory
) -> None:
    preflight = await client.options(
        "/v1/jobs", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    answer = await client.post(
        "/v1/jobs", json=JOB, headers={**bearer(make_token("alice")), "Origin": ALLOWED}
    )

    assert "access-control-allow-origin" not in preflight.headers
    assert answer.status_code == 202
    assert "access-control-allow-origin" not in answer.headers


async def test_an_oversized_body_gets_413_problem_json(
    limited: Client, make_token: TokenFactory
) -> None:
    oversized = {**JOB, "payload": {"text": "x" * LIMITS.max_body_bytes}}

    answer = await limited.post("/v1/jobs", json=oversized, headers=bearer(make_token("alice")))

    assert answer.status_code == 413
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == "urn:conduit:problem:payload-too-large"


async def test_a_body_just_under_the_limit_is_read(
    limited: Client, make_token: TokenFactory
) -> None:
    padded = {**JOB, "payload": {"text": "x" * (LIMITS.max_body_bytes - 200)}}

    answer = await limited.post("/v1/jobs", json=padded, headers=bearer(make_token("alice")))

    assert answer.status_code == 202


async def test_a_batch_counts_each_of_its_jobs(redis: Redis) -> None:
    limiter = JobRateLimiter(redis, RateLimit(per_s=1, burst=5))

    await limiter.admit("alice", jobs=4)
    with pytest.raises(ProblemDetailsException) as refused:
        await limiter.admit("alice", jobs=2)
    await limiter.admit("alice")

    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "1"}


async def test_a_rate_raised_at_run_time_lets_a_refused_user_in_sooner(redis: Redis) -> None:
    limiter = JobRateLimiter(redis, RateLimit(per_s=0.1, burst=2))
    await limiter.admit("alice", jobs=2)
    with pytest.raises(ProblemDetailsException) as slow:
        await limiter.admit("alice")

    limiter.use(RateLimit(per_s=1, burst=2))
    with pytest.raises(ProblemDetailsException) as faster:
        await limiter.admit("alice")

    assert limiter.limit == RateLimit(per_s=1, burst=2)
    assert slow.value.headers == {"Retry-After": "10"}
    # The state was 20 s ahead; at the new rate a full burst is 2 s, the next job due in 1 s.
    assert faster.value.headers == {"Retry-After": "1"}


async def test_more_jobs_at_once_than_the_burst_are_refused_for_good(redis: Redis) -> None:
    limiter = JobRateLimiter(redis, RateLimit(per_s=100, burst=10))

    with pytest.raises(ProblemDetailsException) as refused:
        await limiter.admit("alice", jobs=11)

    assert refused.value.status_code == 422
    assert refused.value.headers is None
    assert await redis.get(user_job_rate("alice")) is None
    await limiter.admit("alice", jobs=10)


async def test_no_limit_at_run_time_admits_everything_until_one_is_set_again(
    redis: Redis,
) -> None:
    limiter = JobRateLimiter(redis, RateLimit(per_s=0.1, burst=1))
    await limiter.admit("alice")

    limiter.use(None)
    for _ in range(5):
        await limiter.admit("alice", jobs=100)
    limiter.use(RateLimit(per_s=0.1, burst=1))

    with pytest.raises(ProblemDetailsException) as refused:
        await limiter.admit("alice")
    assert refused.value.status_code == 429


@pytest.mark.parametrize(
    ("wait_s", "header"), [(0.000001, 1), (0.5, 1), (1.0, 1), (1.000001, 2), (59.2, 60)]
)
def test_retry_after_is_the_wait_in_whole_seconds_rounded_up(wait_s: float, header: int) -> None:
    assert retry_after_s(wait_s) == header


def test_the_settings_are_read_from_the_gateway_variables() -> None:
    settings = from_env(
        GatewaySettings,
        {
            "GATEWAY_JOB_RATE_PER_USER": "5",
            "GATEWAY_JOB_BURST_PER_USER": "20",
            "GATEWAY_CORS_ORIGINS": f"{ALLOWED}, http://localhost:5173",
            "GATEWAY_MAX_BODY_BYTES": "2048",
        },
    )

    assert settings == GatewaySettings(
        job_rate_per_user=5.0,
        job_burst_per_user=20,
        cors_origins=(ALLOWED, "http://localhost:5173"),
        max_body_bytes=2048,
    )
    defaults = from_env(GatewaySettings, {})
    assert defaults.cors_origins == ()
    assert defaults.max_body_bytes == DEFAULT_MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("GATEWAY_CORS_ORIGINS", "https://app.example.com/", "is not an origin"),
        ("GATEWAY_CORS_ORIGINS", "app.example.com", "is not an origin"),
        ("GATEWAY_JOB_RATE_PER_USER", "0", "per_s must be between"),
        ("GATEWAY_JOB_BURST_PER_USER", "0", "burst must be between"),
        ("GATEWAY_MAX_BODY_BYTES", "10", "at least 1024"),
    ],
)
def test_a_bad_setting_is_refused_with_the_reason(variable: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        from_env(GatewaySettings, {variable: value})
