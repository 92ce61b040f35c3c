"""What every scenario gets: the sizes, the running stack, and clients of its Redis."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from benchmarks.config import BenchConfig
from benchmarks.stack import BenchStack
from shared.jobstore import JobStore


@dataclass(frozen=True, kw_only=True)
class BenchContext:
    """The run's sizes, stack, a Redis client of the stack's Redis and a job store on it, and
    where profiles go when the run is profiled (`--profile`)."""

    config: BenchConfig
    stack: BenchStack
    redis: Redis
    store: JobStore
    profile_dir: Path | None = None
