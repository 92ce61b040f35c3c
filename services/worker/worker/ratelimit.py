"""Rate limits per queue and per job type, shared by every worker process and enforced in Redis.

Each limit is a GCRA (generic cell rate algorithm) cell: one key holding the theoretical arrival
time of the next start, on Redis's own clock, so the workers' clocks never matter. A start checks
the queue-wide limit (`*`) and its type's limit in one script call and spends from both only when
both allow it, so a refusal by one never uses up the other's allowance. A type's limit is counted
per queue: its key carries the queue's hash tag, which keeps the script on one cluster slot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

import msgspec
from redis.asyncio import Redis

from shared.streams import QueueKeys

QUEUE_WIDE = "*"
MIN_PER_S = 1 / 86_400
MAX_PER_S = 100_000.0
MAX_BURST = 100_000

_US_PER_S = 1_000_000
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_ITEM = re.compile(
    r"(?P<name>[^\s=,]+)\s*=\s*(?P<count>\d+(?:\.\d+)?)/(?P<unit>[smh])(?::(?P<burst>\d+))?"
)
_FORMAT = "NAME=COUNT/UNIT[:BURST], UNIT one of s, m, h (e.g. 'demo.echo=10/s:5' or '*=100/m')"

# KEYS: one state key per limit, holding its theoretical arrival time (server microseconds).
# ARGV: for each key in turn, its emission interval (microseconds) and its burst.
# Returns 0 when every limit allows the start (recorded in all of them), else the microseconds to
# wait for the slowest one (nothing recorded). TIME in a writing script is safe: Redis 7
# replicates a script's effects, not the script.
_GCRA = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local wait = 0
local next_tat = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', key)) or now, now)
  local allowed_at = tat + interval - burst * interval
  if allowed_at > now then
    wait = math.max(wait, allowed_at - now)
  end
  next_tat[i] = tat + interval
end
if wait > 0 then
  return math.ceil(wait)
end
for i, key in ipairs(KEYS) do
  -- Once its arrival time has passed, a cell is full again: the same as no key at all.
  redis.call('SET', key, next_tat[i], 'PX', math.ceil((next_tat[i] - now) / 1000))
end
return 0
"""


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """At most `per_s` starts a second on average, and up to `burst` at once after a pause."""

    per_s: float
    burst: int = 1

    def __post_init__(self) -> None:
        # The bounds keep the arithmetic exact enough on microsecond doubles and every expiry
        # within what Redis accepts; NaN fails the comparison too.
        if not MIN_PER_S <= self.per_s <= MAX_PER_S:
            raise ValueError(
                f"per_s must be between one a day and {MAX_PER_S:g} a second, not {self.per_s}"
            )
        if not 1 <= self.burst <= MAX_BURST:
            raise ValueError(f"burst must be between 1 and {MAX_BURST}, not {self.burst}")

    @property
    def interval_us(self) -> float:
        """Microseconds between two starts at the steady rate."""
        return _US_PER_S / self.per_s


def parse_rate_limits(text: str) -> dict[str, RateLimit]:
    """Read limits by job type, `*` for a whole queue, from e.g. `demo.echo=10/s:5,*=100/s`."""
    limits: dict[str, RateLimit] = {}
    if not text.strip():
        return limits
    for part in text.split(","):
        item = part.strip()
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"rate limit {item!r} is not {_FORMAT}")
        name = match["name"]
        if name in limits:
            raise ValueError(f"rate limit {item!r}: {name!r} already has a limit")
        try:
            limits[name] = RateLimit(
                per_s=float(match["count"]) / _UNIT_S[match["unit"]],
                burst=int(match["burst"] or 1),
            )
        except ValueError as exc:
            raise ValueError(f"rate limit {item!r}: {exc}") from exc
    return limits


class _Gate:
    """The limits one start must pass: their keys and script arguments, and a line to wait in."""

    def __init__(self, keys: QueueKeys, limits: Mapping[str, RateLimit]) -> None:
        self.keys = tuple(keys.rate(name) for name in limits)
        self.args = tuple(
            arg for limit in limits.values() for arg in (limit.interval_us, limit.burst)
        )
        self.turn = asyncio.Lock()


class RateLimiter:
    """Holds back starts of one queue's jobs to that queue's limits, counted for all workers."""

    def __init__(self, redis: Redis, queue: str, limits: Mapping[str, RateLimit]) -> None:
        self._script = redis.register_script(_GCRA)
        keys = QueueKeys(queue)
        queue_wide = {name: limit for name, limit in limits.items() if name == QUEUE_WIDE}
        self._any_type = _Gate(keys, queue_wide) if queue_wide else None
        self._by_type = {
            name: _Gate(keys, {**queue_wide, name: limit})
            for name, limit in limits.items()
            if name != QUEUE_WIDE
        }

    async def acquire(self, job_type: str) -> None:
        """Return once a job of `job_type` may start, counting that start against its limits."""
        gate = self._by_type.get(job_type, self._any_type)
        if gate is None:
            return
        # This process's tasks take turns, first come first served: only the first asks Redis,
        # instead of all of them waking for the same free start and asking together.
        async with gate.turn:
            wait_s = await self._try(gate)
            while wait_s > 0:
                await asyncio.sleep(wait_s)
                wait_s = await self._try(gate)

    async def try_acquire(self, job_type: str) -> float:
        """Count a start now if the limits allow it and return 0.0; else the seconds to wait."""
        gate = self._by_type.get(job_type, self._any_type)
        return 0.0 if gate is None else await self._try(gate)

    async def _try(self, gate: _Gate) -> float:
        wait_us = await self._script(keys=gate.keys, args=gate.args)
        return int(wait_us) / _US_PER_S
