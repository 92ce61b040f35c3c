"""Runtime settings in PostgreSQL, each change announced on a Redis channel once it is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from redis.asyncio import Redis
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.connections import REDIS_FAILURES
from shared.db.models import SystemSetting
from shared.runtime.catalog import Setting
from shared.streams import SETTINGS_CHANNEL


class StoredSetting(msgspec.Struct, frozen=True, kw_only=True):
    """A setting's row: its JSON value, who set it and when."""

    key: str
    value: Any
    updated_by: str
    updated_at: datetime


class SettingChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Published after a setting's row was written or deleted; listeners then reload them all."""

    key: str
    updated_by: str


class NotAnnouncedError(RuntimeError):
    """The change is stored, but Redis refused the announcement: running services lag behind."""

    def __init__(self, key: str, cause: Exception) -> None:
        super().__init__(f"{key} is stored but was not announced: {cause}")
        self.key = key


def _stored(row: SystemSetting) -> StoredSetting:
    return StoredSetting(
        key=row.key, value=row.value, updated_by=row.updated_by, updated_at=row.updated_at
    )


class RuntimeSettingsStore:
    """Reads and writes `system_settings`; every write is announced on `SETTINGS_CHANNEL`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        channel: str = SETTINGS_CHANNEL,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._channel = channel

    async def stored(self) -> dict[str, StoredSetting]:
        """Every stored row by key, those of keys the catalog no longer knows included."""
        async with self._sessions() as session:
            rows = (await session.scalars(select(SystemSetting))).all()
        return {row.key: _stored(row) for row in rows}

    async def stored_values(self) -> dict[str, Any]:
        """Every stored JSON value by key: what a listener applies."""
        return {key: row.value for key, row in (await self.stored()).items()}

    async def get(self, key: str) -> StoredSetting | None:
        """One stored row, or None while the setting has its default."""
        async with self._sessions() as session:
            row = await session.get(SystemSetting, key)
        return None if row is None else _stored(row)

    async def put(self, setting: Setting[Any], raw: object, updated_by: str) -> StoredSetting:
        """Validate a JSON value (InvalidSettingError), store it, then announce the change.

        The value is stored in its canonical JSON form (a retry schedule's ints become floats).
        NotAnnouncedError when Redis fails after the row was committed: putting it again
        announces it.
        """
        value = setting.to_json(setting.convert(raw))
        statement = (
            insert(SystemSetting)
            .values(key=setting.key, value=value, updated_by=updated_by)
            .on_conflict_do_update(
                index_elements=[SystemSetting.key],
                set_={"value": value, "updated_by": updated_by, "updated_at": func.now()},
            )
            .returning(SystemSetting)
        )
        async with self._sessions.begin() as session:
            row = (await session.scalars(statement)).one()
            stored = _stored(row)
        await self._announce(setting.key, updated_by)
        return stored

    async def reset(self, setting: Setting[Any], updated_by: str) -> None:
        """Delete the row, so services return to their own starting value; then announce it.

        Announced even when no row existed: a reset repeated after a NotAnnouncedError must
        still reach the services.
        """
        async with self._sessions.begin() as session:
            await session.execute(delete(SystemSetting).where(SystemSetting.key == setting.key))
        await self._announce(setting.key, updated_by)

    async def _announce(self, key: str, updated_by: str) -> None:
        message = msgspec.json.encode(SettingChanged(key=key, updated_by=updated_by))
        try:
            await self._redis.publish(self._channel, message)
        except REDIS_FAILURES as exc:
            raise NotAnnouncedError(key, exc) from exc
