"""GCRA (generic cell rate algorithm) rate limits, enforced in Redis for every process that asks.

Each limit is one key holding the theoretical arrival time of the next unit, on Redis's own
clock, so the clocks of the processes never matter. One script call spends from several limits
at once, and from none when any of them refuses, so a refusal by one never uses up another's
allowance. The callers own the key names: the worker's limits per queue and job type, the
gateway's per user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec
from redis.asyncio import Redis

MIN_PER_S = 1 / 86_400
MAX_PER_S = 100_000.0
MAX_BURST = 100_000

_US_PER_S = 1_000_000

# KEYS: one state key per limit, holding its theoretical arrival time (server microseconds).
# ARGV: the cost (units spent at once), then for each key in turn its emission interval
# (microseconds) and its burst.
# Returns 0 when every limit allows spending the cost (recorded in all of them), else the
# microseconds to wait for the slowest one (nothing recorded). TIME in a writing script is safe:
# Redis 7 replicates a script's effects, not the script.
_GCRA = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local cost = tonumber(ARGV[1])
local wait = 0
local next_tat = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  -- At a steady limit the state is never more than a full burst ahead of now; after the limit
  -- was raised it can be: cap it there, so that a raised limit lets waiting callers in at once.
  local tat = math.max(tonumber(redis.call('GET', key)) or now, now)
  tat = math.min(tat, now + burst * interval)
  local allowed_at = tat + (cost - burst) * interval
  if allowed_at > now then
    wait = math.max(wait, allowed_at - now)
  end
  next_tat[i] = tat + cost * interval
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
    """At most `per_s` units a second on average, and up to `burst` at once after a pause."""

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
        """Microseconds between two units at the steady rate."""
        return _US_PER_S / self.per_s


class Gcra:
    """Spends units from limits kept in Redis: from all of the given ones at once, or from none."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_GCRA)

    async def try_spend(self, limits: Mapping[str, RateLimit], cost: int = 1) -> float:
        """Spend `cost` units of every limit, by its key, and return 0.0 if all allow it now;
        else spend nothing and return the seconds until they would.

        A cost above a limit's burst could never be spent: that is the caller's error.
        """
        if cost < 1 or any(cost > limit.burst for limit in limits.values()):
            raise ValueError(f"cannot spend {cost} units of limits with bursts {limits}")
        args: list[float] = [cost]
        for limit in limits.values():
            args += (limit.interval_us, limit.burst)
        wait_us = await self._script(keys=list(limits), args=args)
        return int(wait_us) / _US_PER_S


_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_ITEM = re.compile(
    r"(?P<name>[^\s=,]+)\s*=\s*(?P<count>\d+(?:\.\d+)?)/(?P<unit>[smh])(?::(?P<burst>\d+))?"
)
_FORMAT = "NAME=COUNT/UNIT[:BURST], UNIT one of s, m, h (e.g. 'demo.echo=10/s:5' or '*=100/m')"


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
