"""The probes: each one a small async callable that returns when its target answers, and the
runner that times them, bounds each by its own timeout and turns errors into results."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from health.aggregate import ComponentType, Finding, ProbeResult


class Probe(Protocol):
    """Returns when the target is healthy; raises, with a message worth showing, when not.

    A probe that sees several things (every worker, every queue) returns a finding for each.
    """

    async def __call__(self) -> Sequence[Finding] | None: ...


@dataclass(frozen=True, kw_only=True)
class Check:
    """A probe with the name it reports under and whether its failure makes the system fail."""

    name: str
    component_type: ComponentType
    probe: Probe
    critical: bool = True


class ProbeFailedError(Exception):
    """The target answered, but not healthy."""


def redis_ping(client: Redis) -> Probe:
    """PING through the client's pool; a cluster client pings every master.

    A cluster client would ask one node only, yet a master that is down takes its queues along.
    A client of Sentinel's master asks the sentinels first and reports the master they name.
    """

    async def probe() -> Sequence[Finding] | None:
        master: tuple[str, int] | None = None
        if isinstance(client, RedisCluster):
            answered = await client.ping(target_nodes=RedisCluster.PRIMARIES)
        elif isinstance(pool := client.connection_pool, SentinelConnectionPool):
            # Where the master is now: when it moved, the pool drops its idle connections to
            # the former one, so the PING below goes to the master the sentinels name.
            master = await pool.get_master_address()  # type: ignore[no-untyped-call]  # untyped in redis-py 8.1
            answered = await client.ping()
        else:
            answered = await client.ping()
        if not answered:
            raise ProbeFailedError("PING was not answered with PONG")
        if master is None:
            return None
        host, port = master
        return [Finding(ok=True, component_id=f"{host}:{port}", output="master named by Sentinel")]

    return probe


def postgres_select(engine: AsyncEngine) -> Probe:
    """SELECT 1 on a pooled connection (the engine pre-pings, so a stale one is replaced)."""

    async def probe() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return probe


def http_livez(client: httpx.AsyncClient, base_url: str) -> Probe:
    """GET `{base_url}/livez`; anything but a 2xx is a failure."""
    url = f"{base_url.rstrip('/')}/livez"

    async def probe() -> None:
        response = await client.get(url)
        if not response.is_success:
            raise ProbeFailedError(f"GET {url} answered HTTP {response.status_code}")

    return probe


def describe(error: BaseException) -> str:
    """The error as one line for the document's `output`: its type, and its message if any."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


async def run_check(
    check: Check,
    timeout_s: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProbeResult:
    """Run one probe within `timeout_s`; every error becomes a failed result, never a raise."""
    observed_at = clock()
    started = time.perf_counter()
    error: str | None = None
    findings: Sequence[Finding] | None = None
    try:
        async with asyncio.timeout(timeout_s):
            findings = await check.probe()
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    # Any error of a dependency, whatever its type, is that check failing.
    except Exception as exc:
        error = describe(exc)
    if error is not None:
        logging.getLogger(__name__).warning(
            "health check failed", extra={"check": check.name, "error": error}
        )
    return ProbeResult(
        name=check.name,
        component_type=check.component_type,
        critical=check.critical,
        ok=error is None,
        latency_ms=(time.perf_counter() - started) * 1000,
        observed_at=observed_at,
        error=error,
        findings=tuple(findings or ()),
    )


async def run_checks(checks: Sequence[Check], timeout_s: float) -> list[ProbeResult]:
    """Run every check at once, so the slowest one, not their sum, bounds the answer."""
    return list(await asyncio.gather(*(run_check(check, timeout_s) for check in checks)))
