"""The servers and service processes a run measures, started once with devstack.

One Redis of the run's own (its own port, AOF everysec), one PostgreSQL (or a given database),
and the services as real processes, all started at once (starting one takes seconds). Each
consumes only the queues of the scenarios it serves, so that, say, the notifier does no work
while a worker drains a backlog:

    gateway        enqueue, latency        POST /v1/jobs (scenarios 2 and 4)
    notifier       latency, fanout         WebSocket events (scenarios 4 and 5)
    notifier-idle  idle                    RSS per idle connection (scenario 6), untouched before
    worker-a       drain-one, drain-two,   the one worker process of scenarios 3, 4 and 6
                   latency, memory
    worker-b       drain-two               the second process of scenario 3
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import BenchConfig
from devstack.ports import free_port
from devstack.servers import PostgresServer, RedisServer
from devstack.services import (
    SERVICES,
    ServiceError,
    ServiceProcess,
    ServiceSpec,
    run_migrations,
    service_environment,
    terminate_all,
)
from devstack.tokens import mint_token

ENQUEUE_QUEUE = "enqueue"
# Drained by worker-a alone, and by worker-a and worker-b together.
DRAIN_ONE_QUEUE = "drain-one"
DRAIN_TWO_QUEUE = "drain-two"
LATENCY_QUEUE = "latency"
FANOUT_QUEUE = "fanout"
MEMORY_QUEUE = "memory"
IDLE_QUEUE = "idle"

GATEWAY = "gateway"
NOTIFIER = "notifier"
IDLE_NOTIFIER = "notifier-idle"
WORKER = "worker-a"
SECOND_WORKER = "worker-b"

# The services started with the run; the second worker is the drain scenario's to start.
_SERVICES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    GATEWAY: ("gateway", (ENQUEUE_QUEUE, LATENCY_QUEUE)),
    NOTIFIER: ("notifier", (LATENCY_QUEUE, FANOUT_QUEUE)),
    IDLE_NOTIFIER: ("notifier", (IDLE_QUEUE,)),
    WORKER: ("worker", (DRAIN_ONE_QUEUE, DRAIN_TWO_QUEUE, LATENCY_QUEUE, MEMORY_QUEUE)),
    SECOND_WORKER: ("worker", (DRAIN_TWO_QUEUE,)),
}
_READY_TIMEOUT_S = 120.0
# Far above any load of the run: the gateway's per-user job limit is not what is measured.
_UNLIMITED_JOBS = "100000"


class ServiceUnavailableError(RuntimeError):
    """A scenario needs a service that did not start."""


@dataclass
class BenchStack:
    """The run's Redis, database and service processes, and the secret their tokens share."""

    root: Path
    config: BenchConfig
    redis: RedisServer
    postgres: PostgresServer | None
    database_url: str
    jwt_secret: str
    ports: dict[str, int]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    start_errors: dict[str, str] = field(default_factory=dict)

    def service(self, name: str) -> ServiceProcess:
        """The running process of service `name`; ServiceUnavailableError if it is not up."""
        process = self.processes.get(name)
        if process is None or not process.is_running:
            reason = self.start_errors.get(name) or (
                "not started" if process is None else f"exited: {process.log_tail(20)}"
            )
            raise ServiceUnavailableError(f"{name} is not running: {reason}")
        return process

    def token(self, sub: str, role: str = "USER") -> str:
        """A JWT the services accept, valid for the whole run."""
        return mint_token(self.jwt_secret, sub, role, ttl_s=24 * 3600)

    def pid(self, name: str) -> int:
        """The process id of running service `name`."""
        pid = self.service(name).pid
        if pid is None:
            raise ServiceUnavailableError(f"{name} has no process")
        return pid

    def ws_url(self, name: str) -> str:
        """`ws://host:port/ws` of running notifier `name`."""
        return self.service(name).base_url.replace("http://", "ws://", 1) + "/ws"

    def redis_pid(self) -> int:
        """The process id of the run's redis-server."""
        pid = self.redis.pid
        if pid is None:
            raise ServiceUnavailableError("redis-server is not running")
        return pid

    def _new_process(self, name: str) -> ServiceProcess:
        """A process of service `name` with the run's environment, not yet started."""
        module, queues = _SERVICES[name]
        spec = ServiceSpec(name=name, module=module, port=self.ports[name])
        env = service_environment(
            spec,
            self.ports,
            redis_url=self.redis.url,
            database_url=self.database_url,
            jwt_secret=self.jwt_secret,
            log_level=self.config.log_level,
            queue_names=",".join(queues),
        )
        env |= {
            "WORKER_CONCURRENCY": str(self.config.worker_concurrency),
            "GATEWAY_JOB_RATE_PER_USER": _UNLIMITED_JOBS,
            "GATEWAY_JOB_BURST_PER_USER": _UNLIMITED_JOBS,
        }
        return ServiceProcess(spec, spec.port, env, log_path=self.root / "logs" / f"{name}.log")

    def start(self, names: Iterable[str]) -> None:
        """Start these services at once and wait until each is live; note those that fail."""
        started = [self._new_process(name) for name in names]
        for process in started:
            self.processes[process.name] = process
            process.start()
        for process in started:
            try:
                process.wait_ready(_READY_TIMEOUT_S)
            except ServiceError as exc:
                self.start_errors[process.name] = str(exc)
                process.kill()

    def revive(self) -> list[str]:
        """Start again every service of the run that exited after it started (not those that
        never did); the names of those restarted."""
        gone = tuple(
            name
            for name in _SERVICES
            if name in self.processes
            and name not in self.start_errors
            and not self.processes[name].is_running
        )
        if gone:
            self.start(gone)
        return list(gone)


@contextlib.asynccontextmanager
async def running_stack(
    config: BenchConfig, *, database_url: str | None = None, keep_dir: bool = False
) -> AsyncIterator[BenchStack]:
    """The run's servers and services, stopped (and their data deleted) when the block ends.

    With `database_url` (a migrated database) no PostgreSQL is started. Starting and stopping
    block, so they run in a thread.
    """
    root = Path(tempfile.mkdtemp(prefix="conduit-bench-"))
    try:
        stack = await asyncio.to_thread(_start_stack, root, config, database_url)
        try:
            yield stack
        finally:
            await asyncio.to_thread(_stop_stack, stack)
    finally:
        if not keep_dir:
            shutil.rmtree(root, ignore_errors=True)


def _start_stack(root: Path, config: BenchConfig, database_url: str | None) -> BenchStack:
    redis = RedisServer(root / "redis", free_port(), secrets.token_urlsafe(24))
    postgres: PostgresServer | None = None
    try:
        redis.start()
        if database_url is None:
            postgres = PostgresServer(root / "postgres" / "data", free_port())
            postgres.start()
            database_url = postgres.create_database("conduit")
            run_migrations(database_url)
        stack = BenchStack(
            root=root,
            config=config,
            redis=redis,
            postgres=postgres,
            database_url=database_url,
            jwt_secret=secrets.token_urlsafe(48),
            # Every standard service name too: devstack may look up any of them (the health
            # service's URL, say), though not all run here.
            ports={name: free_port() for name in (*_SERVICES, *(s.name for s in SERVICES))},
        )
        stack.start(_SERVICES)
    except BaseException:
        if postgres is not None:
            postgres.stop()
        redis.stop()
        raise
    return stack


def _stop_stack(stack: BenchStack) -> None:
    terminate_all(stack.processes.values())
    if stack.postgres is not None:
        stack.postgres.stop()
    stack.redis.stop()
