"""The notification repository against a real PostgreSQL: stored once, listed, counted, read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.db.session import create_engine, create_sessionmaker
from shared.notifications import NewNotification, NotificationRepository
from shared.settings import DatabaseSettings


@pytest.fixture
async def repository(database_url: str) -> AsyncIterator[NotificationRepository]:
    engine = create_engine(DatabaseSettings(url=database_url))
    try:
        yield NotificationRepository(create_sessionmaker(engine))
    finally:
        await engine.dispose()


def new(source_event: str, user_id: str = "alice") -> NewNotification:
    return NewNotification(
        source_event=source_event,
        user_id=user_id,
        kind="job.completed",
        title="Job demo.echo completed",
        body="Your job j finished.",
        data={"job_id": "j"},
    )


async def test_a_notification_from_the_same_event_is_stored_once(
    repository: NotificationRepository,
) -> None:
    first = await repository.add_once([new("default:1-0"), new("default:2-0")])
    again = await repository.add_once([new("default:2-0"), new("default:3-0")])

    assert (first, again) == (2, 1)
    assert len(await repository.list_for("alice")) == 3


async def test_list_is_the_users_own_newest_first_and_pages_back(
    repository: NotificationRepository,
) -> None:
    await repository.add_once([new(f"default:{n}-0") for n in range(5)])
    await repository.add_once([new("default:9-0", user_id="bob")])

    newest = await repository.list_for("alice", limit=2)
    older = await repository.list_for("alice", limit=10, before_id=newest[-1].id)

    assert [item.id for item in newest] == sorted((item.id for item in newest), reverse=True)
    assert len(older) == 3
    assert all(item.id < newest[-1].id for item in older)
    assert newest[0].data == {"job_id": "j"}


async def test_marking_read_changes_the_unread_count_and_only_the_users_rows(
    repository: NotificationRepository,
) -> None:
    await repository.add_once([new(f"default:{n}-0") for n in range(3)])
    await repository.add_once([new("default:9-0", user_id="bob")])
    [newest, *_] = await repository.list_for("alice")

    marked_one = await repository.mark_read("alice", [newest.id])
    bob_marks_alices = await repository.mark_read("bob", [newest.id])
    unread_after_one = await repository.unread_count("alice")
    marked_rest = await repository.mark_read("alice")

    assert (marked_one, bob_marks_alices, unread_after_one, marked_rest) == (1, 0, 2, 2)
    assert await repository.unread_count("alice") == 0
    assert await repository.unread_count("bob") == 1
    assert await repository.list_for("alice", unread_only=True) == []
