"""The loop every service runs to apply runtime settings while it runs, without a restart.

It loads every stored value at start, and again on each announcement and each time it
(re)subscribes: pub/sub keeps nothing for a listener that was away, so a listener back from a
Redis outage reloads from PostgreSQL instead of trusting it heard every change. Reloading all
of them, rather than applying a value carried by the message, also makes two racing updates
end on what PostgreSQL holds.

A service registers one applier per key it uses, then runs the loop in its lifespan:

    listener = SettingsListener(redis, RuntimeSettingsStore(sessions, redis))
    follow_log_level(listener)
    listener.on(COMPLETED_TTL_S, apply_ttl, start=lambda: settings.jobs.completed_ttl_s)
    async with listener.running(): ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

import msgspec
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError

from shared.connections import REDIS_FAILURES
from shared.runtime.catalog import LOG_LEVEL, InvalidSettingError, Setting
from shared.runtime.store import SettingChanged
from shared.settings import LogLevel
from shared.streams import SETTINGS_CHANNEL

log = logging.getLogger(__name__)

T = TypeVar("T")

# Outages we expect and wait out quietly; anything else is logged with its traceback.
_EXPECTED = (*REDIS_FAILURES, SQLAlchemyError)


class SettingsSource(Protocol):
    """Where the stored values come from: `RuntimeSettingsStore` in PostgreSQL."""

    async def stored_values(self) -> dict[str, Any]:
        """Every stored JSON value by key."""


@dataclass(kw_only=True)
class _Follower(Generic[T]):
    setting: Setting[T]
    apply: Callable[[T], None]
    start: Callable[[], T] | None
    # The value to return to when no row is stored, and the value the service runs with; both
    # are read at the first load (a 1-tuple, since None is a value some settings take).
    baseline: tuple[T] | None = None
    current: tuple[T] | None = None

    def starting_value(self) -> T:
        return self.setting.default if self.start is None else self.start()


class SettingsListener:
    """Applies each registered setting's value whenever it changes; `run()` until cancelled."""

    def __init__(
        self,
        redis: Redis,
        source: SettingsSource,
        *,
        channel: str = SETTINGS_CHANNEL,
        retry_min_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self._redis = redis
        self._source = source
        self._channel = channel
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._followers: dict[str, _Follower[Any]] = {}
        self._following = asyncio.Event()

    def on(
        self,
        setting: Setting[T],
        apply: Callable[[T], None],
        *,
        start: Callable[[], T] | None = None,
    ) -> None:
        """Call `apply` with the setting's value each time it changes; register before `run`.

        `start` gives the value the service started with (from its environment); it is read at
        the first load, and the service returns to it when the stored row is deleted. Without
        it, that value is the catalog default. `apply` swaps a value or two and returns: it runs
        on the event loop, between reads of the channel.
        """
        if setting.key in self._followers:
            raise ValueError(f"{setting.key} already has an applier")
        self._followers[setting.key] = _Follower(setting=setting, apply=apply, start=start)

    @property
    def following(self) -> bool:
        """Whether it is subscribed and has loaded every value since: no change goes unseen."""
        return self._following.is_set()

    async def wait_following(self) -> None:
        """Return once `following` is true."""
        await self._following.wait()

    async def load(self) -> None:
        """Read every stored value and apply those that differ from what the service runs with."""
        stored = await self._source.stored_values()
        for follower in self._followers.values():
            self._apply(follower, stored)

    async def run(self) -> None:
        """Load, subscribe, and reload on every announcement and resubscription, until cancelled.

        redis-py resubscribes by itself when it reconnects within its retries, and reports that
        with a new `subscribe` confirmation; each one is a reason to reload.
        """
        pubsub = self._redis.pubsub()
        subscribed = False
        stale = True
        delay_s = self._retry_min_s
        try:
            while True:
                # One await a turn, and this check between them: redis-py (8.1) can swallow a
                # cancellation, e.g. one arriving while `subscribe` connects.
                if _cancel_requested():
                    raise asyncio.CancelledError
                try:
                    if stale:
                        await self.load()
                        stale = False
                        if subscribed:
                            self._following.set()
                    elif not subscribed:
                        # Its confirmation, read next, triggers a reload: nothing published
                        # between the first load and the subscription is missed.
                        # A cluster client learns its nodes on its first command, and (redis-py
                        # 8.1) a subscription does not count: without the PING it never would.
                        await self._redis.ping()
                        await pubsub.subscribe(self._channel)
                        subscribed = True
                    else:
                        message = await pubsub.get_message(timeout=None)
                        stale = self._is_news(message)
                        delay_s = self._retry_min_s
                except Exception as exc:  # the loop outlives any failure, each one logged
                    # No reload needed after a Redis failure: resubscribing triggers one.
                    self._following.clear()
                    log.warning(
                        "runtime settings not followed, retrying in %.1fs: %s",
                        delay_s,
                        exc,
                        exc_info=not isinstance(exc, _EXPECTED),
                    )
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, self._retry_max_s)
        finally:
            self._following.clear()
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py 8.1

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SettingsListener]:
        """`run()` in a task for the duration of the block: a service's lifespan."""
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(self.run(), name="runtime-settings")
            try:
                yield self
            finally:
                task.cancel()

    def _is_news(self, message: dict[str, Any] | None) -> bool:
        if message is None:
            return False
        kind = message.get("type")
        if kind == "subscribe":
            return True
        if kind != "message":
            return False
        try:
            change = msgspec.json.decode(message["data"], type=SettingChanged)
        except msgspec.DecodeError as exc:
            # Still news: something changed, and reloading everything finds out what.
            log.warning("undecodable runtime settings announcement: %s", exc)
        else:
            log.info("runtime setting changed", extra={"key": change.key, "by": change.updated_by})
        return True

    def _apply(self, follower: _Follower[Any], stored: dict[str, Any]) -> None:
        if follower.baseline is None:
            follower.baseline = follower.current = (follower.starting_value(),)
        value = _wanted(follower.setting, stored, follower.baseline[0])
        if follower.current is not None and value == follower.current[0]:
            return
        key = follower.setting.key
        try:
            follower.apply(value)
        except Exception:
            # Left as it was, so that the next load tries again.
            log.exception("could not apply runtime setting %s=%r", key, value)
            return
        follower.current = (value,)
        log.info("applied runtime setting", extra={"key": key, "value": repr(value)})


def _cancel_requested() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _wanted(setting: Setting[T], stored: dict[str, Any], baseline: T) -> T:
    """The stored value when there is a valid one, else the service's starting value."""
    if setting.key in stored:
        try:
            return setting.convert(stored[setting.key])
        except InvalidSettingError as exc:
            log.warning("ignoring an invalid stored runtime setting: %s", exc)
    return baseline


def follow_log_level(listener: SettingsListener, logger: logging.Logger | None = None) -> None:
    """Apply `log_level` to the root logger (or `logger`); it starts at the level it has then."""
    target = logger or logging.getLogger()

    def start() -> LogLevel:
        # Possibly a level the catalog does not offer (CRITICAL): only compared and set again.
        return cast(LogLevel, logging.getLevelName(target.getEffectiveLevel()))

    listener.on(LOG_LEVEL, target.setLevel, start=start)
