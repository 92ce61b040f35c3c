"""The async engine and session factory, built by a composition root and passed in."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.settings import DatabaseSettings


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """An engine that checks connections before use, so a restarted PostgreSQL is survived."""
    return create_async_engine(settings.url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
