"""Repeatable job definitions: their validation, and where they live in Redis.

Per queue, the hash `conduit:{queue}:repeatables` holds each definition as JSON (field = name),
and `conduit:{queue}:repeat:marks` holds, per name, the tick in ms up to which the definition is
done: set to the creation time when it is created, advanced after each tick is enqueued. Only
ticks after the mark fire, so a new definition never fires for a tick before it existed, and
ticks missed while every worker was down collapse into one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec
from croniter import CroniterError, croniter
from redis.asyncio import Redis

from shared.contracts.codec import encoder
from shared.contracts.commands import JOB_PAYLOADS
from shared.contracts.repeatables import Repeatable
from shared.streams import QueueKeys

log = logging.getLogger(__name__)

CRON_FIELDS = 5

_decoder = msgspec.json.Decoder(Repeatable)

# KEYS: definitions hash, marks hash. ARGV: name, definition JSON, now ms.
_CREATE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""

# Marks only move forward, and only for a definition that still exists: a scheduler round that
# raced a delete must not leave a mark behind. A missing mark is set, whatever its value.
# KEYS: definitions hash, marks hash. ARGV: name, tick ms.
_ADVANCE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local mark = redis.call('HGET', KEYS[2], ARGV[1])
if mark and tonumber(mark) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


class InvalidRepeatableError(ValueError):
    """A definition that cannot be scheduled or run: its schedule, type, payload or queue."""


class Scheduled(msgspec.Struct, frozen=True, kw_only=True):
    """A definition with its mark: the tick in ms it is done up to, None when it has none yet."""

    definition: Repeatable
    mark_ms: int | None


def check_cron(expression: str) -> None:
    """Raise InvalidRepeatableError unless `expression` is a five-field cron that ever fires."""
    if len(expression.split()) != CRON_FIELDS or not croniter.is_valid(expression):
        raise InvalidRepeatableError(
            f"invalid cron expression {expression!r}: want five fields (minute hour day month"
            " weekday)"
        )
    try:
        croniter(expression, 0.0).get_next(float)
    except CroniterError as exc:
        raise InvalidRepeatableError(f"cron expression {expression!r} never fires") from exc


def check_repeatable(definition: Repeatable, queues: Sequence[str]) -> None:
    """Raise InvalidRepeatableError unless the definition can be scheduled and its job run."""
    if (definition.cron is None) == (definition.every_s is None):
        raise InvalidRepeatableError("give exactly one schedule: cron or every_s")
    if definition.cron is not None:
        check_cron(definition.cron)
    if definition.queue not in queues:
        raise InvalidRepeatableError(f"unknown queue {definition.queue!r}")
    payload_type = JOB_PAYLOADS.get(definition.type)
    if payload_type is None:
        raise InvalidRepeatableError(f"unknown job type {definition.type!r}")
    try:
        msgspec.convert(definition.payload, payload_type)
    except msgspec.ValidationError as exc:
        raise InvalidRepeatableError(f"invalid payload for {definition.type}: {exc}") from exc


class RepeatableStore:
    """Reads and writes definitions and their marks; every key is in its queue's slot."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)
        self._advance = redis.register_script(_ADVANCE)
        # Each unreadable stored value is logged once, not on every scheduler round.
        self._reported: set[tuple[str, str, bytes | str]] = set()

    async def create(self, definition: Repeatable, now_ms: int) -> bool:
        """Store a new definition, marked done up to `now_ms`; False when its name is taken."""
        keys = QueueKeys(definition.queue)
        created = await self._create(
            keys=[keys.repeatables, keys.repeat_marks],
            args=[definition.name, encoder.encode(definition), now_ms],
        )
        return bool(created)

    async def put(self, definition: Repeatable, now_ms: int) -> None:
        """Store or replace a definition, keeping its mark (or marking it at `now_ms`)."""
        keys = QueueKeys(definition.queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.repeatables, definition.name, encoder.encode(definition))
            pipe.hsetnx(keys.repeat_marks, definition.name, now_ms)
            await pipe.execute()

    async def delete(self, queue: str, name: str) -> bool:
        """Remove a definition and its mark; False when there was none."""
        keys = QueueKeys(queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.repeatables, name)
            pipe.hdel(keys.repeat_marks, name)
            removed, _mark = await pipe.execute()
        return bool(removed)

    async def get(self, queue: str, name: str) -> Repeatable | None:
        """The definition `name` of `queue`, or None."""
        raw = await self._redis.hget(QueueKeys(queue).repeatables, name)
        return None if raw is None else self._decode(queue, name, raw)

    async def definitions(self, queues: Sequence[str]) -> list[Repeatable]:
        """Every readable definition of these queues, by queue then name."""
        return [scheduled.definition for scheduled in await self.scheduled(queues)]

    async def scheduled(self, queues: Sequence[str]) -> list[Scheduled]:
        """Every readable definition of these queues with its mark, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                keys = QueueKeys(queue)
                pipe.hgetall(keys.repeatables)
                pipe.hgetall(keys.repeat_marks)
            found: list[dict[bytes, bytes]] = await pipe.execute()
        listing: list[Scheduled] = []
        for index, queue in enumerate(queues):
            stored, marks = found[2 * index], found[2 * index + 1]
            for raw_name in sorted(stored):
                name = raw_name.decode()
                definition = self._decode(queue, name, stored[raw_name])
                if definition is None:
                    continue
                mark = marks.get(raw_name)
                listing.append(
                    Scheduled(definition=definition, mark_ms=None if mark is None else int(mark))
                )
        return listing

    async def advance(self, queue: str, name: str, tick_ms: int) -> bool:
        """Mark `name` done up to `tick_ms`; False when it already was, or no longer exists."""
        keys = QueueKeys(queue)
        moved = await self._advance(
            keys=[keys.repeatables, keys.repeat_marks], args=[name, tick_ms]
        )
        return bool(moved)

    def _decode(self, queue: str, name: str, raw: bytes | str) -> Repeatable | None:
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            if (queue, name, raw) not in self._reported:
                self._reported.add((queue, name, raw))
                log.warning("skipping unreadable repeatable %s on queue %s: %s", name, queue, exc)
            return None
