"""`/v1/queues` on the whole gateway app and a real Redis: overviews for users, pause for admins."""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from devstack.tokens import TokenFactory
from shared.clock import now_ms
from shared.jobstore import JobStore
from shared.queuestats import HISTORY_MINUTES, MINUTE_MS
from shared.streams import DATA_FIELD, Lane, QueueKeys
from tests.api import PROBLEM, Client, bearer
from tests.envelopes import job_envelope
from tests.streams import read_group

DEFAULT = QueueKeys("default")


async def fill_default_queue(redis: Redis, store: JobStore) -> int:
    """High: 2 waiting; normal: 1 waiting, 1 in hand (30 s old); 1 delayed; 1 dead; counters.

    Returns the minute (epoch ms // 60000) the counters were written for as the last full one.
    """
    high = Lane("default", "high")
    await store.ensure_group(high)
    for _ in range(2):
        await store.enqueue(job_envelope(priority="high"))
    await redis.xadd(
        Lane("default").stream,
        {DATA_FIELD: msgspec.json.encode(job_envelope())},
        id=f"{now_ms() - 30_000}-0",
    )
    await read_group(redis, Lane("default").stream, "worker-1", count=1)
    await store.enqueue(job_envelope())
    await store.enqueue(job_envelope(delay_ms=3_600_000))
    await redis.xadd(DEFAULT.dead, {DATA_FIELD: b"{}"})
    last = now_ms() // MINUTE_MS - 1
    # The same figures in the minute now counting: should it end before the request, it is the
    # last full one then, and the answer stays the same.
    mapping: dict[str, int] = {"completed": 50, "failed": 8}
    for minute in (last, last + 1):
        mapping |= {f"completed:{minute}": 12, f"failed:{minute}": 3}
    await redis.hset(DEFAULT.counts, mapping=mapping)  # type: ignore[arg-type]
    return last


async def test_any_user_reads_every_configured_queue(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    last = await fill_default_queue(redis, store)

    response = await client.get("/v1/queues", headers=bearer(make_token("alice")))

    assert response.status_code == 200, response.text
    default, reports = response.json()
    assert [default["name"], reports["name"]] == ["default", "reports"]
    expected = {
        "paused": False,
        "paused_by": None,
        "paused_since_ms": None,
        "waiting": 3,
        "lag": 3,
        "active": 1,
        "delayed": 1,
        "completed": 50,
        "failed": 8,
        "dead": 1,
        "jobs_per_minute": 12,
    }
    assert {key: default[key] for key in expected} == expected
    assert 29 <= default["oldest_pending_age_s"] < 60
    throughput = default["throughput"]
    assert len(throughput) == HISTORY_MINUTES + 1
    assert {"minute_ms": last * MINUTE_MS, "completed": 12, "failed": 3} in throughput
    # The current minute, still counting, comes last.
    assert throughput[-1]["minute_ms"] >= (last + 1) * MINUTE_MS
    assert throughput[-1]["minute_ms"] - throughput[0]["minute_ms"] == 60 * MINUTE_MS
    lanes = {lane["priority"]: lane for lane in default["lanes"]}
    assert (lanes["high"]["waiting"], lanes["high"]["active"]) == (2, 0)
    assert (lanes["normal"]["waiting"], lanes["normal"]["active"]) == (1, 1)
    assert lanes["normal"]["depth"] == 2
    assert (reports["waiting"], reports["completed"], reports["jobs_per_minute"]) == (0, 0, 0)
    assert all(minute["completed"] == 0 for minute in reports["throughput"])


async def test_one_queue_reads_alone_and_an_unknown_one_is_404(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    await fill_default_queue(redis, store)
    headers = bearer(make_token("alice"))

    response = await client.get("/v1/queues/default", headers=headers)
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["waiting"]) == ("default", 3)

    missing = await client.get("/v1/queues/nope", headers=headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"] == "urn:conduit:problem:not-found"


async def test_queues_are_not_public(client: Client) -> None:
    assert (await client.get("/v1/queues")).status_code == 401


async def test_users_may_not_pause_or_resume(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    headers = bearer(make_token("alice"))
    for action in ("pause", "resume"):
        response = await client.post(f"/v1/queues/default/{action}", headers=headers)
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "urn:conduit:problem:forbidden"
    assert not await redis.exists(DEFAULT.paused)


async def test_an_admin_pauses_and_resumes_a_queue_idempotently(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    root = bearer(make_token("root", "ADMIN"))
    before = now_ms()

    paused = await client.post("/v1/queues/default/pause", headers=root)

    assert paused.status_code == 200, paused.text
    view: dict[str, Any] = paused.json()
    assert (view["name"], view["paused"], view["paused_by"]) == ("default", True, "root")
    assert before <= view["paused_since_ms"] <= now_ms()
    stored = msgspec.json.decode(await redis.get(DEFAULT.paused) or b"null")
    assert stored == {"by": "root", "at_ms": view["paused_since_ms"]}
    # Paused again, by someone else: who paused it and since when stay the first pause's.
    again = await client.post(
        "/v1/queues/default/pause", headers=bearer(make_token("ops", "ADMIN"))
    )
    assert again.status_code == 200
    assert (again.json()["paused_by"], again.json()["paused_since_ms"]) == (
        "root",
        view["paused_since_ms"],
    )
    seen = await client.get("/v1/queues", headers=bearer(make_token("alice")))
    assert [queue["paused"] for queue in seen.json()] == [True, False]

    for _ in range(2):
        resumed = await client.post("/v1/queues/default/resume", headers=root)
        assert resumed.status_code == 200
        assert (resumed.json()["paused"], resumed.json()["paused_by"]) == (False, None)
    assert not await redis.exists(DEFAULT.paused)


async def test_pausing_an_unknown_queue_is_404(client: Client, make_token: TokenFactory) -> None:
    response = await client.post(
        "/v1/queues/nope/pause", headers=bearer(make_token("root", "ADMIN"))
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
