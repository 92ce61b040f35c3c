"""The repository's per-notification reads and writes against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.db.session import create_engine, create_sessionmaker
from shared.notifications import NewNotification, NotificationRepository
from shared.settings import DatabaseSettings


@pytest.fixture
async def notifications(database_url: str) -> AsyncIterator[NotificationRepository]:
    engine = create_engine(DatabaseSettings(url=database_url))
    try:
        yield NotificationRepository(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def stored_ids(repository: NotificationRepository, user_id: str, count: int) -> list[int]:
    """Store `count` notifications for `user_id`; their ids, newest first."""
    await repository.add_once(
        [
            NewNotification(
                source_event=f"default:{user_id}-{n}",
                user_id=user_id,
                kind="job.completed",
                title=f"Job {n} completed",
            )
            for n in range(count)
        ]
    )
    return [item.id for item in await repository.list_for(user_id)]


async def test_pages_cover_every_notification_once_and_the_last_has_no_cursor(
    notifications: NotificationRepository,
) -> None:
    ids = await stored_ids(notifications, "alice", 5)

    first = await notifications.page_for("alice", limit=2)
    second = await notifications.page_for("alice", limit=2, before_id=first.next)
    third = await notifications.page_for("alice", limit=2, before_id=second.next)

    assert [item.id for page in (first, second, third) for item in page.items] == ids
    assert (first.next, second.next, third.next) == (ids[1], ids[3], None)


async def test_the_unread_filter_pages_over_unread_ones_only(
    notifications: NotificationRepository,
) -> None:
    newest, second, *older = await stored_ids(notifications, "alice", 4)
    await notifications.mark_read("alice", [second])

    page = await notifications.page_for("alice", limit=2, unread_only=True)
    rest = await notifications.page_for("alice", limit=2, before_id=page.next, unread_only=True)

    assert [item.id for item in page.items] == [newest, older[0]]
    assert [item.id for item in rest.items] == [older[1]]
    assert rest.next is None


async def test_marking_one_read_keeps_its_first_read_time_and_is_scoped_to_its_user(
    notifications: NotificationRepository,
) -> None:
    [only] = await stored_ids(notifications, "alice", 1)

    by_bob = await notifications.mark_one_read("bob", only)
    first = await notifications.mark_one_read("alice", only)
    again = await notifications.mark_one_read("alice", only)

    assert by_bob is None
    assert first is not None
    assert first.read_at is not None
    assert again == first
    assert await notifications.unread_count("alice") == 0


async def test_a_dismissed_notification_leaves_list_count_and_reads(
    notifications: NotificationRepository,
) -> None:
    newest, older = await stored_ids(notifications, "alice", 2)

    by_bob = await notifications.dismiss("bob", newest)
    dismissed = await notifications.dismiss("alice", newest)
    repeated = await notifications.dismiss("alice", newest)
    unknown = await notifications.dismiss("alice", older + newest + 1)

    assert (by_bob, dismissed, repeated, unknown) == (False, True, True, False)
    assert [item.id for item in await notifications.list_for("alice")] == [older]
    assert await notifications.unread_count("alice") == 1
    assert await notifications.mark_one_read("alice", newest) is None
    # Marking all read counts only what the user can still see.
    assert await notifications.mark_read("alice") == 1
