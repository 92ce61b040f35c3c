"""`python -m devstack run`: Redis, PostgreSQL and the four services in the foreground."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from devstack.ports import port_or_free
from devstack.rundir import kept_secret
from devstack.servers import PostgresServer, RedisServer, ServerError
from devstack.services import (
    SERVICES,
    ServiceError,
    ServiceProcess,
    run_migrations,
    start_services,
    terminate_all,
)
from devstack.stack import Stack

REDIS_PORT = 16379
POSTGRES_PORT = 15432
DATABASE = "conduit"
_WATCH_S = 0.5


class StopRequested(Exception):  # noqa: N818 - a request, not an error
    """SIGINT or SIGTERM arrived: stop everything cleanly."""


def say(message: str) -> None:
    """One plain line on stderr; the services' own logs are JSON on stdout."""
    print(f"devstack: {message}", file=sys.stderr, flush=True)


def _request_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


def _already_stopping(_signum: int, _frame: FrameType | None) -> None:
    say("already stopping; waiting for the services to exit")


def _port(name: str, preferred: int) -> int:
    port = port_or_free(preferred)
    if port != preferred:
        say(f"port {preferred} is taken; {name} uses {port} instead")
    return port


def _own_redis(run_dir: Path, environ: Mapping[str, str], stack: contextlib.ExitStack) -> str:
    password = kept_secret(run_dir / "redis-password", environ, "REDIS_PASSWORD")
    server = RedisServer(run_dir / "redis", _port("redis", REDIS_PORT), password)
    say(f"starting redis-server on 127.0.0.1:{server.port} (data in {server.directory})")
    stack.callback(_stopping, "redis", server.stop)  # registered first: a signal may come mid-start
    server.start()
    return server.url


def _own_postgres(run_dir: Path, stack: contextlib.ExitStack) -> str:
    server = PostgresServer(run_dir / "postgres", _port("postgres", POSTGRES_PORT))
    say(f"starting PostgreSQL on 127.0.0.1:{server.port} (data in {server.data_dir})")
    stack.callback(_stopping, "postgres", server.stop)
    server.start()
    if not server.database_exists(DATABASE):
        server.create_database(DATABASE)
    return server.url(DATABASE)


def _stopping(name: str, stop: Callable[[], None]) -> None:
    say(f"stopping {name}")
    stop()


def _announce(stack: Stack) -> None:
    say(f"gateway   {stack.gateway_url}   (REST API, OpenAPI at /schema)")
    say(f"console   {stack.gateway_url}/console   (sign in as a dev user)")
    say(f"notifier  {stack.notifier_ws_url}")
    say(f"health    {stack.health_url}")
    say(f"worker    {stack.worker_url}")
    say("a token: make token SUB=alice ROLE=USER; Ctrl-C stops everything")


def _watch(processes: list[ServiceProcess]) -> int:
    while True:
        for process in processes:
            if not process.is_running:
                say(f"{process.name} exited unexpectedly (code {process.returncode}); stopping")
                return 1
        time.sleep(_WATCH_S)


def run(
    run_dir: Path,
    environ: Mapping[str, str],
    *,
    log_dir: Path | None = None,
) -> int:
    """Start everything, wait in the foreground for a signal or a crash, stop it all: exit code."""
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        with contextlib.ExitStack() as stack:
            try:
                return _serve(run_dir, environ, log_dir, stack)
            except StopRequested as stop:
                say(f"{stop} received; stopping")
                return 0
            except (ServerError, ServiceError) as error:
                say(f"could not start: {error}")
                return 1
            finally:
                signal.signal(signal.SIGINT, _already_stopping)
                signal.signal(signal.SIGTERM, _already_stopping)
    finally:
        say("stopped")


def _serve(
    run_dir: Path,
    environ: Mapping[str, str],
    log_dir: Path | None,
    stack: contextlib.ExitStack,
) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    jwt_secret = kept_secret(run_dir / "jwt-secret", environ, "JWT_SECRET")
    redis_url = environ.get("REDIS_URL") or _own_redis(run_dir, environ, stack)
    database_url = environ.get("DATABASE_URL") or _own_postgres(run_dir, stack)
    say("running migrations")
    run_migrations(database_url)
    ports = {spec.name: _port(spec.name, spec.port) for spec in SERVICES}
    say("starting " + ", ".join(spec.name for spec in SERVICES))
    processes = start_services(
        SERVICES,
        ports,
        redis_url=redis_url,
        database_url=database_url,
        jwt_secret=jwt_secret,
        log_level=environ.get("LOG_LEVEL", "INFO"),
        queue_names=environ.get("QUEUE_NAMES", "default"),
        log_dir=log_dir,
    )
    stack.callback(_stopping, "services", lambda: terminate_all(processes))
    _announce(
        Stack(
            services={process.name: process for process in processes},
            redis_url=redis_url,
            database_url=database_url,
            jwt_secret=jwt_secret,
        )
    )
    return _watch(processes)
