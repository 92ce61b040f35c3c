"""The notification repository: users' notifications in PostgreSQL, each stored once per event.

Every read and write is scoped to one user: a row of another user is indistinguishable from a
missing one, so an API built on this cannot leak which ids exist. Dismissed rows stay in the
table (the unique source event keeps a replay from storing them again) but are never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import Notification

# The largest id the BIGINT primary key holds; larger ones cannot exist and are refused early.
MAX_NOTIFICATION_ID = 2**63 - 1
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class NewNotification(msgspec.Struct, frozen=True, kw_only=True):
    """A notification to store; `source_event`, its event's offset, makes storing idempotent."""

    source_event: str
    user_id: str
    kind: str
    title: str
    body: str = ""
    data: dict[str, Any] = {}


class StoredNotification(msgspec.Struct, frozen=True, kw_only=True):
    """A user's notification as the API shows it."""

    id: Annotated[int, msgspec.Meta(description="Increases with every notification stored.")]
    kind: Annotated[
        str, msgspec.Meta(description="What happened, e.g. `job.completed`, `job.dead_lettered`.")
    ]
    title: Annotated[str, msgspec.Meta(description="One line for the user.")]
    body: Annotated[str, msgspec.Meta(description="More detail for the user; may be empty.")]
    data: Annotated[
        dict[str, Any],
        msgspec.Meta(description="Machine-readable context, e.g. `job_id`, `type`, `queue`."),
    ]
    created_at: Annotated[datetime, msgspec.Meta(description="When it was stored.")]
    read_at: Annotated[
        datetime | None, msgspec.Meta(description="When the user first read it; null if unread.")
    ]


class NotificationPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a user's notifications, newest first."""

    items: Annotated[list[StoredNotification], msgspec.Meta(description="Newest first.")]
    next: Annotated[
        int | None,
        msgspec.Meta(
            description="Pass as `before` (with the same filters) for the next, older page; "
            "null when this is the last page."
        ),
    ]


class UnreadCount(msgspec.Struct, frozen=True, kw_only=True):
    """How many of the user's notifications are unread (dismissed ones do not count)."""

    unread: Annotated[int, msgspec.Meta(ge=0, description="Unread, not dismissed.")]


class MarkedRead(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of marking every notification read."""

    marked: Annotated[
        int, msgspec.Meta(ge=0, description="How many were unread before and are read now.")
    ]


def _stored(row: Notification) -> StoredNotification:
    return StoredNotification(
        id=row.id,
        kind=row.kind,
        title=row.title,
        body=row.body,
        data=row.data,
        created_at=row.created_at,
        read_at=row.read_at,
    )


class NotificationRepository:
    """Stores and reads notifications; every write is one short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add_once(self, notifications: Sequence[NewNotification]) -> int:
        """Store each notification unless one from the same event exists; how many were new."""
        if not notifications:
            return 0
        statement = (
            insert(Notification)
            .values([msgspec.structs.asdict(notification) for notification in notifications])
            .on_conflict_do_nothing(index_elements=[Notification.source_event])
            .returning(Notification.id)
        )
        async with self._sessions.begin() as session:
            return len((await session.execute(statement)).all())

    async def list_for(
        self,
        user_id: str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before_id: int | None = None,
        unread_only: bool = False,
    ) -> list[StoredNotification]:
        """A user's notifications, newest first; `before_id` pages back from an earlier answer."""
        query = select(Notification).where(
            Notification.user_id == user_id, Notification.dismissed_at.is_(None)
        )
        if before_id is not None:
            query = query.where(Notification.id < before_id)
        if unread_only:
            query = query.where(Notification.read_at.is_(None))
        query = query.order_by(Notification.id.desc()).limit(limit)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_stored(row) for row in rows]

    async def page_for(
        self,
        user_id: str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        before_id: int | None = None,
        unread_only: bool = False,
    ) -> NotificationPage:
        """Up to `limit` notifications and the cursor of the next page, if there is one."""
        # One row more than asked says whether another page exists without a second query.
        rows = await self.list_for(
            user_id, limit=limit + 1, before_id=before_id, unread_only=unread_only
        )
        items = rows[:limit]
        more = len(rows) > limit
        return NotificationPage(items=items, next=items[-1].id if more else None)

    async def unread_count(self, user_id: str) -> int:
        """How many of a user's notifications are unread."""
        query = select(func.count()).where(
            Notification.user_id == user_id,
            Notification.read_at.is_(None),
            Notification.dismissed_at.is_(None),
        )
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def mark_read(self, user_id: str, ids: Sequence[int] | None = None) -> int:
        """Mark the user's notifications with these ids (all when None) read; how many changed."""
        statement = (
            update(Notification)
            .where(
                Notification.user_id == user_id,
                Notification.read_at.is_(None),
                Notification.dismissed_at.is_(None),
            )
            .values(read_at=func.now())
        )
        if ids is not None:
            statement = statement.where(Notification.id.in_(ids))
        async with self._sessions.begin() as session:
            result = await session.execute(statement.returning(Notification.id))
            return len(result.all())

    async def mark_one_read(self, user_id: str, notification_id: int) -> StoredNotification | None:
        """Mark one read, keeping the first read time on a repeat; None if not the user's."""
        statement = (
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.user_id == user_id,
                Notification.dismissed_at.is_(None),
            )
            .values(read_at=func.coalesce(Notification.read_at, func.now()))
            .returning(Notification)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            row = (await session.scalars(statement)).one_or_none()
            return None if row is None else _stored(row)

    async def dismiss(self, user_id: str, notification_id: int) -> bool:
        """Hide one from the list and the count; a repeat is a no-op; False if not the user's."""
        statement = (
            update(Notification)
            .where(Notification.id == notification_id, Notification.user_id == user_id)
            .values(dismissed_at=func.coalesce(Notification.dismissed_at, func.now()))
            .returning(Notification.id)
        )
        async with self._sessions.begin() as session:
            return (await session.execute(statement)).one_or_none() is not None
