"""Notifiers as `python -m notifier`, for what only its entry point does: pings, SIGTERM."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from devstack.ports import free_port
from devstack.services import SERVICES, ServiceProcess, service_environment

NOTIFIER = next(spec for spec in SERVICES if spec.name == "notifier")


class NotifierProcesses:
    """Starts notifier processes on the test's Redis and database, each logging to a file."""

    def __init__(
        self, directory: Path, *, redis_url: str, database_url: str, jwt_secret: str
    ) -> None:
        self._directory = directory
        self._redis_url = redis_url
        self._database_url = database_url
        self._jwt_secret = jwt_secret
        self._started = 0

    @contextmanager
    def started(
        self, settings: Mapping[str, str], port: int | None = None
    ) -> Iterator[ServiceProcess]:
        """A live notifier with these `NOTIFIER_*` settings (on `port`, or any); ended on exit."""
        port = free_port() if port is None else port
        env = service_environment(
            NOTIFIER,
            {"notifier": port},
            redis_url=self._redis_url,
            database_url=self._database_url,
            jwt_secret=self._jwt_secret,
        )
        self._started += 1
        log_path = self._directory / f"notifier-{self._started}.log"
        process = ServiceProcess(NOTIFIER, port, {**env, **settings}, log_path=log_path)
        process.start()
        try:
            process.wait_ready()
            yield process
        finally:
            process.terminate()
