"""Redis's own warn checks, from INFO: memory near `maxmemory`, and AOF off or failing.

Both only warn: Redis still serves, but a full memory refuses new jobs (or evicts them, by its
policy) and without AOF a restart loses the jobs written since the last snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from health.aggregate import Finding
from health.probes import Probe


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def memory_finding(info: Mapping[str, Any], warn_ratio: float) -> Finding:
    """`used_memory` in percent of `maxmemory`, warning above `warn_ratio` or when the policy
    would evict keys; without a `maxmemory` (0: unlimited) there is no limit to be near, and the
    bytes used pass."""
    used = int(info["used_memory"])
    limit = int(info.get("maxmemory", 0))
    if limit <= 0:
        return Finding(ok=True, observed_value=used, observed_unit="bytes")
    policy = _text(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        # Full memory then evicts keys, job records and streams among them: jobs vanish.
        return Finding(
            ok=False,
            observed_value=used / limit * 100,
            observed_unit="%",
            output=f"maxmemory-policy is {policy}: a full Redis evicts jobs; use noeviction",
        )
    ratio = used / limit
    return Finding(
        ok=ratio <= warn_ratio,
        observed_value=ratio * 100,
        observed_unit="%",
        output=(
            None
            if ratio <= warn_ratio
            else f"Redis uses {ratio:.0%} of its maxmemory ({used} of {limit} bytes), "
            f"over {warn_ratio:.0%}"
        ),
    )


def aof_finding(info: Mapping[str, Any]) -> Finding:
    """Warns when AOF is off, or its last write failed; the entry shows INFO's latency."""
    if int(info.get("aof_enabled", 0)) == 0:
        return Finding(
            ok=False,
            output="AOF is off: a Redis restart loses the jobs written since the last snapshot",
        )
    status = _text(info.get("aof_last_write_status", "ok"))
    if status != "ok":
        return Finding(
            ok=False, output=f"the last AOF write failed (aof_last_write_status:{status})"
        )
    return Finding(ok=True)


def redis_memory(client: Redis, warn_ratio: float) -> Probe:
    """INFO memory, judged by `memory_finding`."""

    async def probe() -> list[Finding]:
        return [memory_finding(await client.info("memory"), warn_ratio)]

    return probe


def redis_aof(client: Redis) -> Probe:
    """INFO persistence, judged by `aof_finding`."""

    async def probe() -> list[Finding]:
        return [aof_finding(await client.info("persistence"))]

    return probe
