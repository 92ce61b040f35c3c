"""`/v1/notifications` on the whole gateway app and a real PostgreSQL: the caller's own only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from devstack.tokens import TokenFactory
from shared.db.session import create_engine, create_sessionmaker
from shared.notifications import NewNotification, NotificationRepository
from shared.settings import DatabaseSettings
from tests.api import PROBLEM, Client, bearer


@pytest.fixture
async def repository(database_url: str) -> AsyncIterator[NotificationRepository]:
    """The notifier's side: how notifications get into the table the gateway reads."""
    engine = create_engine(DatabaseSettings(url=database_url))
    try:
        yield NotificationRepository(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def store(repository: NotificationRepository, user_id: str, count: int) -> None:
    """`count` notifications for `user_id`, from distinct events, oldest first."""
    stored = await repository.add_once(
        [
            NewNotification(
                source_event=f"default:{user_id}-{n}",
                user_id=user_id,
                kind="job.completed",
                title=f"Job {n} completed",
                body=f"Your job j{n} finished.",
                data={"job_id": f"j{n}", "n": n},
            )
            for n in range(count)
        ]
    )
    assert stored == count


async def ids_of(client: Client, headers: dict[str, str], query: str = "") -> list[int]:
    answer = await client.get(f"/v1/notifications{query}", headers=headers)
    assert answer.status_code == 200
    return [item["id"] for item in answer.json()["items"]]


async def unread(client: Client, headers: dict[str, str]) -> int:
    answer = await client.get("/v1/notifications/unread-count", headers=headers)
    assert answer.status_code == 200
    count: int = answer.json()["unread"]
    return count


async def test_the_list_pages_newest_first_through_the_cursor(
    client: Client, repository: NotificationRepository, make_token: TokenFactory
) -> None:
    await store(repository, "alice", 5)
    await store(repository, "bob", 2)
    alice = bearer(make_token("alice"))

    first = (await client.get("/v1/notifications?limit=3", headers=alice)).json()
    second = (
        await client.get(f"/v1/notifications?limit=3&before={first['next']}", headers=alice)
    ).json()

    first_ids = [item["id"] for item in first["items"]]
    second_ids = [item["id"] for item in second["items"]]
    assert len(first_ids) == 3
    assert first["next"] == first_ids[-1]
    assert len(second_ids) == 2
    assert second["next"] is None
    everything = first_ids + second_ids
    assert everything == sorted(everything, reverse=True)
    assert [item["data"]["n"] for item in first["items"] + second["items"]] == [4, 3, 2, 1, 0]
    newest = first["items"][0]
    assert (newest["kind"], newest["title"], newest["body"], newest["read_at"]) == (
        "job.completed",
        "Job 4 completed",
        "Your job j4 finished.",
        None,
    )
    assert newest["created_at"]


async def test_the_default_page_holds_fifty_and_says_there_is_more(
    client: Client, repository: NotificationRepository, make_token: TokenFactory
) -> None:
    await store(repository, "alice", 51)
    alice = bearer(make_token("alice"))

    page = (await client.get("/v1/notifications", headers=alice)).json()
    rest = await ids_of(client, alice, f"?before={page['next']}")

    assert len(page["items"]) == 50
    assert page["next"] == page["items"][-1]["id"]
    assert len(rest) == 1
    assert rest[0] < page["next"]


async def test_a_page_that_ends_exactly_at_the_limit_has_no_cursor(
    client: Client, repository: NotificationRepository, make_token: TokenFactory
) -> None:
    await store(repository, "alice", 2)

    page = (
        await client.get("/v1/notifications?limit=2", headers=bearer(make_token("alice")))
    ).json()

    assert (len(page["items"]), page["next"]) == (2, None)


async def test_read_read_all_and_dismiss_change_the_unread_count(
    client: Client, repository: NotificationRepository, make_token: TokenFactory
) -> None:
    await store(repository, "alice", 4)
    alice = bearer(make_token("alice"))
    newest, second, *_ = await ids_of(client, alice)
    assert await unread(client, alice) == 4

    read = await client.post(f"/v1/notifications/{newest}/read", headers=alice)
    assert read.status_code == 200
    assert (read.json()["id"], read.json()["title"]) == (newest, "Job 3 completed")
    assert read.json()["read_at"] is not None
    assert await unread(client, alice) == 3
    assert newest not in await ids_of(client, alice, "?unread=true")
    assert newest in await ids_of(client, alice)

    dismissed = await client.post(f"/v1/notifications/{second}/dismiss", headers=alice)
    assert dismissed.status_code == 204
    assert dismissed.content == b""
    assert await unread(client, alice) == 2
    assert second not in await ids_of(client, alice)

    read_all = await client.post("/v1/notifications/read-all", headers=alice)
    assert (read_all.status_code, read_all.json()) == (200, {"marked": 2})
    assert await unread(client, alice) == 0
    again = await client.post("/v1/notifications/read-all", headers=alice)
    assert again.json() == {"marked": 0}
    assert await ids_of(client, alice, "?unread=true") == []


async def test_marking_read_twice_keeps_the_first_read_time(
    client: Client, repository: NotificationRepository, make_token: TokenFactory
) -> None:
    await store(repository, "alice", 1)
    alice = bearer(make_token("alice"))
    [only] = await ids_of(client, alice)

    first = await client.post(f"/v1/notifications/{only}/read", headers=alice)
    second = await client.post(f"/v1/notifications/{only}/read", headers=alice)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["read_at"] is not None
    assert second.json() == first.json()


async def test_dismissing_twice_answers_204_both_times(
    client: Client, repository: NotificationRepository, make_token: TokenFactory
) -> None:
    await store(repository, "alice", 1)
    alice = bearer(make_token("alice"))
    [only] = await ids_of(client, alice)

    first = await client.post(f"/v1/notifications/{only}/dismiss", headers=alice)
    second = await client.post(f"/v1/notifications/{only}/dismiss", headers=alice)

    assert (first.status_code, second.status_code) == (204, 204)
    assert await ids_of(client, alice) == []
    gone = await client.post(f"/v1/notifications/{only}/read", headers=alice)
    assert gone.status_code == 404


async def test_another_users_notification_is_not_found_and_stays_untouched(
    client: Client, repository: NotificationRepository, make_token: TokenFactory
) -> None:
    await store(repository, "bob", 1)
    bob = bearer(make_token("bob"))
    [bobs] = await ids_of(client, bob)
    mallory = bearer(make_token("mallory"))
    # Admins get no exception: notifications are private to their user.
    admin = bearer(make_token("root", "ADMIN"))

    answers = [
        await client.post(f"/v1/notifications/{bobs}/read", headers=mallory),
        await client.post(f"/v1/notifications/{bobs}/dismiss", headers=mallory),
        await client.post(f"/v1/notifications/{bobs}/read", headers=admin),
        await client.post(f"/v1/notifications/{bobs + 1000}/read", headers=mallory),
        await client.post(f"/v1/notifications/{bobs + 1000}/dismiss", headers=mallory),
    ]
    mallory_read_all = await client.post("/v1/notifications/read-all", headers=mallory)

    for answer in answers:
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.json()["type"] == "urn:conduit:problem:not-found"
    # Unknown and foreign ids read the same, but for the id itself.
    assert answers[0].json()["detail"] == f"no notification {bobs}"
    assert mallory_read_all.json() == {"marked": 0}
    assert await ids_of(client, mallory) == []
    assert await unread(client, mallory) == 0
    assert await ids_of(client, bob) == [bobs]
    assert await unread(client, bob) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/notifications"),
        ("GET", "/v1/notifications/unread-count"),
        ("POST", "/v1/notifications/1/read"),
        ("POST", "/v1/notifications/read-all"),
        ("POST", "/v1/notifications/1/dismiss"),
    ],
)
async def test_every_route_needs_a_token(client: Client, method: str, path: str) -> None:
    answer = await client.request(method, path)

    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["type"] == "urn:conduit:problem:unauthorized"


@pytest.mark.parametrize(
    "query",
    ["?limit=0", "?limit=101", "?limit=ten", "?before=0", f"?before={2**63}", "?unread=maybe"],
)
async def test_a_bad_query_is_a_validation_problem(
    client: Client, make_token: TokenFactory, query: str
) -> None:
    answer = await client.get(f"/v1/notifications{query}", headers=bearer(make_token("alice")))

    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = answer.json()
    assert body["type"] == "urn:conduit:problem:validation"


async def test_an_id_beyond_the_column_is_a_validation_problem_not_a_server_error(
    client: Client, make_token: TokenFactory
) -> None:
    answer = await client.post(
        f"/v1/notifications/{2**63}/read", headers=bearer(make_token("alice"))
    )

    assert answer.status_code == 400
    assert answer.json()["type"] == "urn:conduit:problem:validation"


async def test_the_openapi_schema_documents_the_notification_fields(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()

    paths = schema["paths"]
    assert {
        "/v1/notifications",
        "/v1/notifications/unread-count",
        "/v1/notifications/read-all",
        "/v1/notifications/{notification_id}/read",
        "/v1/notifications/{notification_id}/dismiss",
    } <= set(paths)
    fields = schema["components"]["schemas"]["StoredNotification"]["properties"]
    assert fields["read_at"]["description"].startswith("When the user first read it")
