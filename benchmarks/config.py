"""The sizes of one benchmark run: issue 10's by default, tiny for the smoke test (`BENCH_*`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar

import msgspec

from shared.settings import LogLevel, from_env

Positive = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class BenchConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How much each scenario does; every field is also `BENCH_<FIELD>` in the environment."""

    env_prefix: ClassVar[str] = "BENCH_"

    # 1. Raw Redis: entries one consumer reads and acks; XADDs from many clients; round trips.
    raw_entries: Positive = 200_000
    raw_entry_bytes: Positive = 100
    raw_read_count: Positive = 100
    raw_xadd_clients: Positive = 50
    raw_xadd_entries: Positive = 100_000
    raw_round_trips: Positive = 5_000
    # 2. Enqueue: through the Python API one by one and batched, and over HTTP.
    enqueue_single_jobs: Positive = 5_000
    enqueue_batch_jobs: Positive = 20_000
    enqueue_batch_size: Positive = 100
    http_clients: Positive = 50
    http_jobs: Positive = 5_000
    # 3. Drain: a backlog of no-op jobs, by one worker process and by two.
    drain_jobs: Positive = 20_000
    worker_concurrency: Positive = 50
    # 4. Latency under an open-loop load, straight to Redis and through gateway and notifier.
    latency_rate_per_s: PositiveFloat = 500.0
    latency_duration_s: PositiveFloat = 20.0
    # A job counts as late when it completes this long after it was enqueued, or never.
    late_ms: Positive = 1_000
    # 5. Fan-out: users (rooms) x connections each, in this many client processes.
    fanout_users: Positive = 100
    fanout_connections_per_user: Positive = 20
    fanout_client_processes: Positive = 2
    fanout_room_rate_per_s: PositiveFloat = 200.0
    fanout_room_duration_s: PositiveFloat = 15.0
    fanout_broadcast_rate_per_s: PositiveFloat = 10.0
    fanout_broadcast_duration_s: PositiveFloat = 15.0
    # 6. Memory: completed jobs kept (retention on), and idle WebSocket connections.
    memory_jobs: Positive = 100_000
    idle_connections: Positive = 2_000
    # How long to wait for stragglers (jobs to finish, deliveries to arrive) after a load.
    settle_s: PositiveFloat = 1.0
    # The most any wait for jobs or connections may take before the scenario gives up.
    wait_timeout_s: PositiveFloat = 300.0
    # The most one scenario may take in all.
    scenario_timeout_s: PositiveFloat = 1_200.0
    # The services' log level: their default, so the run measures what is deployed.
    log_level: LogLevel = "INFO"


# The smoke test's sizes: every scenario runs, each in well under a second of load.
TINY: Mapping[str, int | float] = {
    "raw_entries": 2_000,
    "raw_xadd_clients": 10,
    "raw_xadd_entries": 1_000,
    "raw_round_trips": 200,
    "enqueue_single_jobs": 100,
    "enqueue_batch_jobs": 500,
    "enqueue_batch_size": 50,
    "http_clients": 5,
    "http_jobs": 50,
    "drain_jobs": 200,
    "worker_concurrency": 10,
    "latency_rate_per_s": 50.0,
    "latency_duration_s": 0.5,
    "fanout_users": 4,
    "fanout_connections_per_user": 3,
    "fanout_client_processes": 1,
    "fanout_room_rate_per_s": 20.0,
    "fanout_room_duration_s": 0.5,
    "fanout_broadcast_rate_per_s": 10.0,
    "fanout_broadcast_duration_s": 0.5,
    "memory_jobs": 200,
    "idle_connections": 20,
    "settle_s": 0.2,
    "wait_timeout_s": 30.0,
    "scenario_timeout_s": 60.0,
}


def load_config(*, tiny: bool = False, environ: Mapping[str, str] | None = None) -> BenchConfig:
    """The sizes from `BENCH_*` variables, over the tiny or issue 10's; SettingsError if bad."""
    prefix = BenchConfig.env_prefix
    defaults = {f"{prefix}{name.upper()}": str(value) for name, value in TINY.items()}
    return from_env(BenchConfig, environ, defaults if tiny else None)


def tiny_config(**overrides: int | float | str) -> BenchConfig:
    """The smoke test's sizes, with `overrides` by field name; the environment is not read."""
    return msgspec.structs.replace(load_config(tiny=True, environ={}), **overrides)
