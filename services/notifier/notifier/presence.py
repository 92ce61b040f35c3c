"""Presence: who is connected in a room, across every notifier instance, kept in Redis.

Each room with presence has a sorted set `conduit:presence:{room}` whose members are connections
(`<sub>␟<instance>␟<connection>`) scored by when they lapse. An instance adds and removes its own
connections as they come and go and renews all of them every third of the TTL, so a crashed
instance's connections drop out within the TTL. Only user and entity rooms have presence: role
rooms hold every connection and would cost one write per connection for nothing anyone asks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable

import msgspec
from redis.asyncio import Redis

from notifier.cancellation import stop_if_cancelled
from shared.connections import REDIS_FAILURES
from shared.contracts.ws import is_entity_room
from shared.streams import PREFIX

logger = logging.getLogger(__name__)

_SEPARATOR = "\x1f"


def has_presence(room: str) -> bool:
    """Whether presence is kept for this room: user rooms and entity rooms."""
    return room.startswith("user:") or is_entity_room(room)


def presence_key(room: str) -> str:
    """The sorted set of a room's present connections."""
    return f"{PREFIX}:presence:{{{room}}}"


class RoomPresence(msgspec.Struct, frozen=True, kw_only=True):
    """Who is in a room now: distinct users, by `sub`, and how many connections they have."""

    subs: tuple[str, ...]
    connections: int


class RedisPresence:
    """This instance's connections in the presence sets, and reading those sets.

    Connections enter and leave without touching Redis: `run` writes the changes in one
    pipeline every `flush_ms`, so a reconnect storm costs a few round trips, not one per client.
    """

    def __init__(self, redis: Redis, instance: str, *, ttl_ms: int, flush_ms: int) -> None:
        self._redis = redis
        self._instance = instance
        self._ttl_ms = ttl_ms
        self._flush_ms = flush_ms
        self._numbers = itertools.count()
        # Every (room, member) this instance holds; those not yet written; those to remove.
        self._held: set[tuple[str, str]] = set()
        self._entered: set[tuple[str, str]] = set()
        self._left: set[tuple[str, str]] = set()

    def member(self, sub: str) -> str:
        """A new member name for one connection of `sub`."""
        return _SEPARATOR.join((sub, self._instance, str(next(self._numbers))))

    def enter(self, member: str, rooms: Iterable[str]) -> None:
        """Show a connection in those of the rooms that keep presence, from the next flush."""
        entered = {(room, member) for room in rooms if has_presence(room)}
        self._held |= entered
        self._entered |= entered
        self._left -= entered

    def leave(self, member: str, rooms: Iterable[str]) -> None:
        """Stop showing a connection in these rooms, from the next flush."""
        left = {(room, member) for room in rooms} & self._held
        self._held -= left
        self._entered -= left
        self._left |= left

    async def of(self, room: str) -> RoomPresence:
        """Who is in a room now, on any instance (this one's changes written first)."""
        await self._flush(renew=False)
        key = presence_key(room)
        now_ms = time.time() * 1000
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now_ms)
            pipe.zrangebyscore(key, now_ms, "+inf")
            _, members = await pipe.execute()
        subs = {member.decode().rsplit(_SEPARATOR, 2)[0] for member in members}
        return RoomPresence(subs=tuple(sorted(subs)), connections=len(members))

    async def run(self) -> None:
        """Write changes every `flush_ms` and renew every entry every third of the TTL."""
        renew_every_s = self._ttl_ms / 3000
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(self._flush_ms / 1000)
            renew = time.monotonic() - renewed_at >= renew_every_s
            try:
                await self._flush(renew=renew)
            except REDIS_FAILURES as exc:
                logger.warning("writing presence failed, retrying: %r", exc)
                continue
            finally:
                stop_if_cancelled()
            if renew:
                renewed_at = time.monotonic()

    async def _flush(self, *, renew: bool) -> None:
        entered, left = self._entered, self._left
        if not (entered or left or renew):
            return
        # Taken now; what changes during the write goes to the next flush.
        self._entered, self._left = set(), set()
        lapses_ms = time.time() * 1000 + self._ttl_ms
        scores: dict[str, dict[str, float]] = {}
        for room, member in self._held if renew else entered:
            scores.setdefault(room, {})[member] = lapses_ms
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for room, members in scores.items():
                    pipe.zadd(presence_key(room), members)
                    pipe.pexpire(presence_key(room), self._ttl_ms)
                for room, member in left:
                    pipe.zrem(presence_key(room), member)
                await pipe.execute()
        except BaseException:
            # Written again next time; a removal lost meanwhile would lapse with the TTL anyway.
            self._entered |= entered & self._held
            self._left |= left - self._held
            raise
