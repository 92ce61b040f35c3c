"""The notification repository: users' notifications in PostgreSQL, each stored once per event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import Notification


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

    id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


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
        limit: int = 50,
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
        return [
            StoredNotification(
                id=row.id,
                kind=row.kind,
                title=row.title,
                body=row.body,
                data=row.data,
                created_at=row.created_at,
                read_at=row.read_at,
            )
            for row in rows
        ]

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
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=func.now())
        )
        if ids is not None:
            statement = statement.where(Notification.id.in_(ids))
        async with self._sessions.begin() as session:
            result = await session.execute(statement.returning(Notification.id))
            return len(result.all())
