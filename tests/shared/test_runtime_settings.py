"""Runtime settings: the catalog's validation, the PostgreSQL store and its announcements, and
the listener that applies them, against a real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import msgspec
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack.servers import RedisServer
from shared.db.session import create_engine, create_sessionmaker
from shared.runtime.catalog import (
    CATALOG,
    COMPLETED_TTL_S,
    JOB_RATE_PER_USER,
    LOG_LEVEL,
    RETRY_SCHEDULE_S,
    InvalidSettingError,
    JobRate,
)
from shared.runtime.listener import SettingsListener, follow_log_level
from shared.runtime.store import NotAnnouncedError, RuntimeSettingsStore, SettingChanged
from shared.settings import DatabaseSettings
from shared.streams import SETTINGS_CHANNEL


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test's own migrated database."""
    engine = create_engine(DatabaseSettings(url=database_url))
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def settings_store(
    sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> RuntimeSettingsStore:
    """The store as a service builds it."""
    return RuntimeSettingsStore(sessions, redis)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of the test's own, at WARNING: the level its service "started" with."""
    target = logging.getLogger(f"conduit.test.runtime.{uuid.uuid4().hex}")
    target.setLevel(logging.WARNING)
    yield target
    target.setLevel(logging.NOTSET)


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Return once `condition` holds; fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polls what another task changes
            await asyncio.sleep(0.01)


# The catalog: pure validation.


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("log_level", "debug", "Invalid enum value 'debug'"),
        ("log_level", 10, "Expected `str`"),
        ("jobs.completed_ttl_s", 59, ">= 60"),
        ("jobs.failed_ttl_s", "3600", "Expected `int`, got `str`"),
        ("jobs.failed_ttl_s", True, "Expected `int`, got `bool`"),
        ("jobs.completed_ttl_s", 10**12, "<= 31536000"),
        ("worker.retry_schedule_s", [], "length >= 1"),
        ("worker.retry_schedule_s", [1.0] * 26, "length <= 25"),
        ("worker.retry_schedule_s", [5, 0], "> 0.0 - at `$[1]`"),
        ("gateway.job_rate_per_user", {"per_s": 5}, "missing required field `burst`"),
        ("gateway.job_rate_per_user", {"per_s": 5, "brust": 9}, "unknown field `brust`"),
        ("gateway.job_rate_per_user", {"per_s": 0, "burst": 9}, "`$.per_s`"),
    ],
)
def test_a_value_outside_its_type_or_bounds_is_refused_naming_the_key(
    key: str, value: object, reason: str
) -> None:
    with pytest.raises(InvalidSettingError) as refused:
        CATALOG[key].convert(value)
    assert refused.value.key == key
    assert reason in refused.value.reason
    assert str(refused.value).startswith(f"{key}: ")


def test_values_convert_to_their_typed_form_and_back_to_json() -> None:
    assert RETRY_SCHEDULE_S.convert([1, 2.5]) == (1.0, 2.5)
    assert JOB_RATE_PER_USER.convert({"per_s": 2, "burst": 10}) == JobRate(per_s=2.0, burst=10)
    assert JOB_RATE_PER_USER.convert(None) is None
    rate = JobRate(per_s=2.0, burst=10)
    assert JOB_RATE_PER_USER.to_json(rate) == {"per_s": 2.0, "burst": 10}
    assert rate.limit().interval_us == 500_000
    assert COMPLETED_TTL_S.schema() == {"type": "integer", "minimum": 60, "maximum": 31536000}


def test_every_default_is_a_valid_value_of_its_own_setting() -> None:
    for key, setting in CATALOG.items():
        assert setting.key == key
        assert setting.convert(setting.to_json(setting.default)) == setting.default
        assert setting.description


# The store: rows in PostgreSQL, each write announced.


async def test_a_put_stores_the_canonical_value_and_who_set_it(
    settings_store: RuntimeSettingsStore,
) -> None:
    first = await settings_store.put(RETRY_SCHEDULE_S, [1, 2], "admin-1")
    assert (first.value, first.updated_by) == ([1.0, 2.0], "admin-1")

    second = await settings_store.put(RETRY_SCHEDULE_S, [3], "admin-2")
    assert second.updated_at >= first.updated_at
    stored = await settings_store.get(RETRY_SCHEDULE_S.key)
    assert stored is not None
    assert (stored.value, stored.updated_by) == ([3.0], "admin-2")
    assert await settings_store.stored_values() == {RETRY_SCHEDULE_S.key: [3.0]}


async def test_null_is_stored_as_a_value_not_as_a_missing_row(
    settings_store: RuntimeSettingsStore,
) -> None:
    await settings_store.put(JOB_RATE_PER_USER, None, "admin")
    assert await settings_store.stored_values() == {JOB_RATE_PER_USER.key: None}


async def test_an_invalid_value_is_neither_stored_nor_announced(
    settings_store: RuntimeSettingsStore, redis: Redis
) -> None:
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(SETTINGS_CHANNEL)
        with pytest.raises(InvalidSettingError):
            await settings_store.put(COMPLETED_TTL_S, 30, "admin")
        await pubsub.get_message(timeout=1.0)  # the subscription's confirmation
        assert await pubsub.get_message(timeout=0.2) is None
    assert await settings_store.stored() == {}


async def test_each_put_and_reset_is_announced_after_it_is_stored(
    settings_store: RuntimeSettingsStore, redis: Redis
) -> None:
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(SETTINGS_CHANNEL)
        await pubsub.get_message(timeout=1.0)
        await settings_store.put(LOG_LEVEL, "DEBUG", "admin-1")
        await settings_store.reset(LOG_LEVEL, "admin-2")
        announced = [await pubsub.get_message(timeout=1.0) for _ in range(2)]
    assert [
        msgspec.json.decode(message["data"], type=SettingChanged)
        for message in announced
        if message is not None
    ] == [
        SettingChanged(key="log_level", updated_by="admin-1"),
        SettingChanged(key="log_level", updated_by="admin-2"),
    ]
    assert await settings_store.get(LOG_LEVEL.key) is None


# The listener: what a running service applies.


async def test_the_first_load_applies_what_postgresql_holds(
    settings_store: RuntimeSettingsStore, redis: Redis, logger: logging.Logger
) -> None:
    await settings_store.put(LOG_LEVEL, "ERROR", "admin")
    listener = SettingsListener(redis, settings_store)
    follow_log_level(listener, logger)

    await listener.load()

    assert logger.level == logging.ERROR


async def test_a_running_listener_applies_each_change_and_a_reset_restores_the_start_value(
    settings_store: RuntimeSettingsStore, redis: Redis, logger: logging.Logger
) -> None:
    listener = SettingsListener(redis, settings_store)
    follow_log_level(listener, logger)
    async with listener.running():
        await asyncio.wait_for(listener.wait_following(), 10)
        assert logger.level == logging.WARNING

        await settings_store.put(LOG_LEVEL, "DEBUG", "admin")
        await until(lambda: logger.level == logging.DEBUG)

        await settings_store.reset(LOG_LEVEL, "admin")
        await until(lambda: logger.level == logging.WARNING)


async def test_without_a_start_value_an_unset_key_means_the_catalog_default(
    settings_store: RuntimeSettingsStore, redis: Redis
) -> None:
    applied: list[tuple[float, ...]] = []
    listener = SettingsListener(redis, settings_store)
    listener.on(RETRY_SCHEDULE_S, applied.append)
    async with listener.running():
        await asyncio.wait_for(listener.wait_following(), 10)
        await settings_store.put(RETRY_SCHEDULE_S, [1, 2], "admin")
        await until(lambda: applied == [(1.0, 2.0)])
        await settings_store.reset(RETRY_SCHEDULE_S, "admin")
        await until(lambda: applied == [(1.0, 2.0), RETRY_SCHEDULE_S.default])


async def test_an_invalid_stored_row_is_ignored_and_the_start_value_kept(
    settings_store: RuntimeSettingsStore,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As a row written by hand, or by a version whose catalog allowed more, would be.
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO system_settings (key, value, updated_by) "
                "VALUES ('log_level', '\"LOUD\"', 'psql')"
            )
        )
    listener = SettingsListener(redis, settings_store)
    follow_log_level(listener, logger)

    with caplog.at_level(logging.WARNING, logger="shared.runtime.listener"):
        await listener.load()

    assert logger.level == logging.WARNING
    assert "ignoring an invalid stored runtime setting: log_level" in caplog.text


async def test_an_applier_that_fails_is_logged_and_tried_again_at_the_next_change(
    settings_store: RuntimeSettingsStore, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def fail_once(ttl_s: int) -> None:
        calls.append(ttl_s)
        if len(calls) == 1:
            raise RuntimeError("not now")

    listener = SettingsListener(redis, settings_store)
    listener.on(COMPLETED_TTL_S, fail_once)
    await settings_store.put(COMPLETED_TTL_S, 600, "admin")
    with caplog.at_level(logging.ERROR, logger="shared.runtime.listener"):
        await listener.load()
        await listener.load()

    assert calls == [600, 600]
    assert "could not apply runtime setting jobs.completed_ttl_s=600" in caplog.text


def test_a_key_takes_one_applier_per_listener(
    settings_store: RuntimeSettingsStore, redis: Redis
) -> None:
    listener = SettingsListener(redis, settings_store)
    listener.on(LOG_LEVEL, lambda _level: None)
    with pytest.raises(ValueError, match="log_level already has an applier"):
        listener.on(LOG_LEVEL, lambda _level: None)


async def test_a_change_made_during_a_redis_outage_is_applied_once_redis_is_back(
    settings_store: RuntimeSettingsStore,
    redis: Redis,
    redis_server: RedisServer,
    logger: logging.Logger,
) -> None:
    listener = SettingsListener(redis, settings_store, retry_max_s=0.2)
    follow_log_level(listener, logger)
    async with listener.running():
        await asyncio.wait_for(listener.wait_following(), 10)

        await asyncio.to_thread(redis_server.stop)
        try:
            # Stored, but nobody can be told: the announcement is lost for good.
            with pytest.raises(NotAnnouncedError):
                await settings_store.put(LOG_LEVEL, "ERROR", "admin")
            await until(lambda: not listener.following)
            assert logger.level == logging.WARNING
        finally:
            await asyncio.to_thread(redis_server.start)

        await until(lambda: logger.level == logging.ERROR, timeout_s=20)
        await asyncio.wait_for(listener.wait_following(), 10)


async def test_the_listener_starts_while_redis_is_down_and_applies_postgresql_at_once(
    settings_store: RuntimeSettingsStore,
    redis: Redis,
    redis_server: RedisServer,
    logger: logging.Logger,
) -> None:
    await settings_store.put(LOG_LEVEL, "DEBUG", "admin")
    listener = SettingsListener(redis, settings_store, retry_max_s=0.2)
    follow_log_level(listener, logger)
    await asyncio.to_thread(redis_server.stop)
    try:
        async with listener.running():
            await until(lambda: logger.level == logging.DEBUG)
            assert not listener.following
            await asyncio.to_thread(redis_server.start)
            await asyncio.wait_for(listener.wait_following(), 20)
    finally:
        if not redis_server.is_running:
            await asyncio.to_thread(redis_server.start)


async def test_the_listener_stops_promptly_whenever_it_is_cancelled(
    settings_store: RuntimeSettingsStore, redis: Redis, logger: logging.Logger
) -> None:
    # Cancelled at points all along its start: loading, subscribing (where redis-py 8.1 has
    # been seen to swallow a cancellation), reading.
    for step in range(60):
        listener = SettingsListener(redis, settings_store)
        follow_log_level(listener, logger)
        async with asyncio.timeout(5), listener.running():
            await asyncio.sleep(step * 0.0005)
