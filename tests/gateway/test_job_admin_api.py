"""Listing, batches, retry, removal and dead letters through the gateway, on a real Redis.

Jobs are run by the worker's real runner reading the real stream, so a dead job here is dead
the way a worker makes it: attempts spent, error history kept, dead letter written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from devstack.tokens import TokenFactory
from shared.jobstore import JobStore
from shared.streams import Lane, QueueKeys
from tests.api import PROBLEM, Client, bearer
from tests.streams import read_group
from worker.app import create_registry
from worker.retry import RetryPolicy
from worker.runner import JobRunner

KEYS = QueueKeys("default")


def at(ms: int) -> str:
    """An epoch ms as the ISO 8601 time a query parameter takes."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def run_queued(redis: Redis, store: JobStore) -> int:
    """Run every queued job of the default queue once, as one worker would."""
    runner = JobRunner(
        store, create_registry(), RetryPolicy(schedule_s=(0.0,)), consumer="t", max_deliveries=5
    )
    entries = await read_group(redis, KEYS.stream, "t", count=1000)
    for entry_id, data in entries:
        await runner.run(Lane("default"), entry_id, data)
    return len(entries)


async def submit(client: Client, token: str, **job: Any) -> str:
    body = {"type": "demo.echo", "payload": {"text": "hi"}} | job
    answer = await client.post("/v1/jobs", json=body, headers=bearer(token))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def a_dead_job(client: Client, redis: Redis, store: JobStore, token: str) -> str:
    job_id = await submit(
        client, token, type="demo.fail", payload={"times": 1, "message": "boom"}, max_attempts=1
    )
    await store.ensure_group(Lane("default"))
    await run_queued(redis, store)
    return job_id


async def test_a_user_lists_their_own_jobs_newest_first_across_pages(
    client: Client, make_token: TokenFactory
) -> None:
    alice, bob = make_token("alice"), make_token("bob")
    mine = [await submit(client, alice, payload={"text": str(i)}) for i in range(5)]
    await submit(client, bob)

    first = (await client.get("/v1/jobs?limit=3", headers=bearer(alice))).json()
    second = (
        await client.get(f"/v1/jobs?limit=3&cursor={first['next']}", headers=bearer(alice))
    ).json()

    assert [job["id"] for job in first["items"]] == mine[::-1][:3]
    assert [job["id"] for job in second["items"]] == mine[::-1][3:]
    assert second["next"] is None
    assert {job["owner"] for job in first["items"] + second["items"]} == {"alice"}


async def test_filters_narrow_the_listing_and_admins_see_every_owner(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    alice, admin = make_token("alice"), make_token("root", "ADMIN")
    dead = await a_dead_job(client, redis, store, alice)
    queued = await submit(client, alice)
    report = await submit(client, make_token("bob"), queue="reports")

    by_state = (await client.get("/v1/jobs?state=dead", headers=bearer(alice))).json()
    by_queue = (await client.get("/v1/jobs?queue=reports", headers=bearer(admin))).json()
    by_owner = (await client.get("/v1/jobs?owner=alice", headers=bearer(admin))).json()
    by_type = (await client.get("/v1/jobs?type=demo.echo", headers=bearer(admin))).json()
    everyone = (await client.get("/v1/jobs", headers=bearer(admin))).json()

    assert [job["id"] for job in by_state["items"]] == [dead]
    assert [job["id"] for job in by_queue["items"]] == [report]
    assert [job["id"] for job in by_owner["items"]] == [queued, dead]
    assert [job["id"] for job in by_type["items"]] == [report, queued]
    assert [job["id"] for job in everyone["items"]] == [report, queued, dead]


async def test_a_time_range_bounds_the_listing(client: Client, make_token: TokenFactory) -> None:
    alice = bearer(make_token("alice"))
    await submit(client, make_token("alice"))
    job = (await client.get("/v1/jobs", headers=alice)).json()["items"][0]
    created = job["created_at_ms"]

    inside = await client.get(
        "/v1/jobs", params={"created_after": at(created - 1000)}, headers=alice
    )
    before = await client.get(
        "/v1/jobs", params={"created_before": at(created - 1000)}, headers=alice
    )

    assert [item["id"] for item in inside.json()["items"]] == [job["id"]]
    assert before.json()["items"] == []


async def test_listing_refuses_another_users_jobs_a_bad_cursor_and_an_unknown_queue(
    client: Client, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))

    others = await client.get("/v1/jobs?owner=bob", headers=alice)
    cursor = await client.get("/v1/jobs?cursor=%%%", headers=alice)
    queue = await client.get("/v1/jobs?queue=nope", headers=alice)
    state = await client.get("/v1/jobs?state=lost", headers=alice)

    assert (others.status_code, others.headers["content-type"]) == (403, PROBLEM)
    assert (cursor.status_code, cursor.headers["content-type"]) == (400, PROBLEM)
    assert (queue.status_code, queue.headers["content-type"]) == (400, PROBLEM)
    assert (state.status_code, state.headers["content-type"]) == (400, PROBLEM)


async def test_an_expired_job_leaves_the_listing(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))
    kept = await submit(client, make_token("alice"))
    gone = await submit(client, make_token("alice"))
    await redis.delete(KEYS.job(gone))

    listed = (await client.get("/v1/jobs", headers=alice)).json()

    assert [job["id"] for job in listed["items"]] == [kept]
    # Dropped from both indexes as it was found missing, not read again on every listing.
    assert await redis.zscore(KEYS.jobs, gone) is None
    assert await redis.zscore(KEYS.owner_jobs("alice"), gone) is None


async def test_a_batch_is_queued_whole_in_order(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    jobs = [{"type": "demo.echo", "payload": {"text": str(i)}} for i in range(300)]

    answer = await client.post(
        "/v1/jobs:batch", json={"jobs": jobs}, headers=bearer(make_token("alice"))
    )

    assert answer.status_code == 202
    ids = answer.json()["ids"]
    assert len(set(ids)) == 300
    assert await redis.xlen(KEYS.stream) == 300
    assert await redis.zcard(KEYS.owner_jobs("alice")) == 300


async def test_a_batch_with_one_bad_job_queues_nothing_and_names_it(
    client: Client, redis: Redis, make_token: TokenFactory
) -> None:
    jobs: list[dict[str, Any]] = [
        {"type": "demo.echo", "payload": {"text": "ok"}},
        {"type": "demo.echo", "payload": {"wrong": 1}},
        {"type": "no.such"},
    ]

    answer = await client.post(
        "/v1/jobs:batch", json={"jobs": jobs}, headers=bearer(make_token("alice"))
    )
    split = await client.post(
        "/v1/jobs:batch",
        json={"jobs": [jobs[0], jobs[0] | {"queue": "reports"}]},
        headers=bearer(make_token("alice")),
    )
    empty = await client.post("/v1/jobs:batch", json={"jobs": []}, headers=bearer(make_token("a")))

    assert (answer.status_code, answer.headers["content-type"]) == (422, PROBLEM)
    assert [error["index"] for error in answer.json()["errors"]] == [1, 2]
    assert split.status_code == 422
    assert empty.status_code == 400
    assert await redis.exists(KEYS.stream) == 0


async def test_the_owner_retries_a_dead_job_and_it_runs_again(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))
    job_id = await a_dead_job(client, redis, store, make_token("alice"))
    dead = (await client.get(f"/v1/jobs/{job_id}", headers=alice)).json()
    # A finished job still shows what it was asked to do.
    assert (dead["state"], dead["payload"]) == ("dead", {"times": 1, "message": "boom"})

    retried = await client.post(f"/v1/jobs/{job_id}/retry", headers=alice)

    assert retried.status_code == 202
    assert retried.json()["state"] == "queued"
    assert await redis.xlen(KEYS.dead) == 0
    # A fresh round of attempts, numbered on: demo.fail failed attempt 1 only, so attempt 2
    # completes, the error of the first run kept in its history.
    assert await run_queued(redis, store) == 1
    again = (await client.get(f"/v1/jobs/{job_id}", headers=alice)).json()
    assert (again["state"], again["attempt"], again["max_attempts"]) == ("completed", 2, 2)
    assert [error["message"] for error in again["errors"]] == ["boom (attempt 1 of 1)"]
    audit = (
        await client.get(
            "/v1/queues/default/dead-letters/audit", headers=bearer(make_token("root", "ADMIN"))
        )
    ).json()
    assert [(entry["record"]["action"], entry["record"]["by"]) for entry in audit] == [
        ("replay", "alice")
    ]


async def test_retry_answers_404_403_and_409_as_it_should(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("alice"))
    dead = await a_dead_job(client, redis, store, make_token("alice"))
    queued = await submit(client, make_token("alice"))

    unknown = await client.post("/v1/jobs/nope/retry", headers=alice)
    foreign = await client.post(f"/v1/jobs/{dead}/retry", headers=bearer(make_token("bob")))
    not_dead = await client.post(f"/v1/jobs/{queued}/retry", headers=alice)
    first = await client.post(f"/v1/jobs/{dead}/retry", headers=alice)
    twice = await client.post(f"/v1/jobs/{dead}/retry", headers=alice)

    assert [a.status_code for a in (unknown, foreign, not_dead, first, twice)] == [
        404,
        403,
        409,
        202,
        409,
    ]
    assert twice.headers["content-type"] == PROBLEM


async def test_an_admin_removes_a_finished_job_but_not_a_waiting_one(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    admin, alice = bearer(make_token("root", "ADMIN")), bearer(make_token("alice"))
    dead = await a_dead_job(client, redis, store, make_token("alice"))
    queued = await submit(client, make_token("alice"))

    by_user = await client.delete(f"/v1/jobs/{dead}", headers=alice)
    waiting = await client.delete(f"/v1/jobs/{queued}", headers=admin)
    removed = await client.delete(f"/v1/jobs/{dead}", headers=admin)
    again = await client.delete(f"/v1/jobs/{dead}", headers=admin)

    assert [a.status_code for a in (by_user, waiting, removed, again)] == [403, 409, 204, 404]
    assert await redis.exists(KEYS.job(dead)) == 0
    assert await redis.xlen(KEYS.dead) == 0
    assert await redis.zscore(KEYS.jobs, dead) is None
    listed = (await client.get("/v1/jobs", headers=alice)).json()
    assert [job["id"] for job in listed["items"]] == [queued]


async def test_admins_list_read_replay_and_purge_dead_letters(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    admin = bearer(make_token("root", "ADMIN"))
    first = await a_dead_job(client, redis, store, make_token("alice"))
    second = await a_dead_job(client, redis, store, make_token("bob"))
    base = "/v1/queues/default/dead-letters"

    page = (await client.get(base, headers=admin)).json()
    assert [letter["job_id"] for letter in page["items"]] == [second, first]
    letter = (await client.get(f"{base}/{page['items'][1]['id']}", headers=admin)).json()
    assert letter["reason"].startswith("boom")
    assert (letter["owner"], letter["payload"]["message"]) == ("alice", "boom")
    mine = (await client.get(f"{base}?owner=bob", headers=admin)).json()
    assert [letter["job_id"] for letter in mine["items"]] == [second]

    replayed = await client.post(f"{base}/{letter['id']}/replay", headers=admin)
    gone = await client.post(f"{base}/{letter['id']}/replay", headers=admin)
    purged = await client.post(f"{base}/purge", json={"owner": "bob"}, headers=admin)

    assert replayed.json() == {"letter": letter["id"], "job_id": first}
    assert gone.status_code == 404
    assert purged.json() == {"matched": 1, "done": 1, "skipped": 0, "more": False}
    assert await redis.xlen(KEYS.dead) == 0
    audit = (await client.get(f"{base}/audit", headers=admin)).json()
    assert [(entry["record"]["action"], entry["record"]["count"]) for entry in audit] == [
        ("purge", 1),
        ("replay", 1),
    ]


async def test_bulk_replay_takes_every_match_and_users_may_not_touch_dead_letters(
    client: Client, redis: Redis, store: JobStore, make_token: TokenFactory
) -> None:
    admin = bearer(make_token("root", "ADMIN"))
    ids = [await a_dead_job(client, redis, store, make_token("alice")) for _ in range(3)]
    base = "/v1/queues/default/dead-letters"

    forbidden = await client.get(base, headers=bearer(make_token("alice")))
    unknown_queue = await client.get("/v1/queues/nope/dead-letters", headers=admin)
    bad_id = await client.get(f"{base}/not-an-id", headers=admin)
    bulk = await client.post(f"{base}/replay", json={"reason": "BOO"}, headers=admin)

    assert [a.status_code for a in (forbidden, unknown_queue, bad_id)] == [403, 404, 404]
    assert bulk.json() == {"matched": 3, "done": 3, "skipped": 0, "more": False}
    states = [
        (await client.get(f"/v1/jobs/{job_id}", headers=admin)).json()["state"] for job_id in ids
    ]
    assert states == ["queued"] * 3
