"""Conduit's four services as OS processes: what runs, with which environment, and how."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx
import msgspec

from devstack.ports import LOOPBACK
from devstack.servers import log_tail

_POLL_S = 0.1


class ServiceError(RuntimeError):
    """A service did not start, become live or run its migrations."""


class ServiceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One service: its name, the module `python -m` runs, and its default HTTP port."""

    name: str
    module: str
    port: int


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(name="gateway", module="gateway", port=8000),
    ServiceSpec(name="notifier", module="notifier", port=8001),
    ServiceSpec(name="health", module="health", port=8002),
    ServiceSpec(name="worker", module="worker", port=8003),
)


def base_url(port: int) -> str:
    """`http://127.0.0.1:port`."""
    return f"http://{LOOPBACK}:{port}"


def service_environment(
    spec: ServiceSpec,
    ports: Mapping[str, int],
    *,
    redis_url: str,
    database_url: str,
    jwt_secret: str,
    log_level: str = "INFO",
    queue_names: str = "default",
    inherited: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one service; `ports` maps every service's name to its HTTP port."""
    env = dict(os.environ if inherited is None else inherited)
    env |= {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "JWT_SECRET": jwt_secret,
        "LOG_LEVEL": log_level,
        "QUEUE_NAMES": queue_names,
        "HTTP_HOST": LOOPBACK,
        "HTTP_PORT": str(ports[spec.name]),
        # Logs reach their file or terminal line by line, also when the process is killed.
        "PYTHONUNBUFFERED": "1",
    }
    if spec.name == "health":
        # Workers are found by their heartbeats in Redis, not at a URL.
        for other in ("gateway", "notifier"):
            env[f"HEALTH_{other.upper()}_URL"] = base_url(ports[other])
    if spec.name == "gateway":
        # The console at /console: a local demo stack lets anyone sign in as any dev user
        # (CONSOLE_DEV_SIGN_IN=false turns that off), and tells browsers where the notifier is.
        # A gateway started alone (`ports` without the others) keeps the console's defaults.
        env.setdefault("CONSOLE_DEV_SIGN_IN", "true")
        if "notifier" in ports:
            env["CONSOLE_NOTIFIER_URL"] = f"ws://{LOOPBACK}:{ports['notifier']}/ws"
        if "health" in ports:
            env["CONSOLE_HEALTH_URL"] = base_url(ports["health"])
    if spec.name == "notifier" and "gateway" in ports:
        # The console's pages, served by the gateway, open the notifier's WebSocket.
        console = [f"http://{host}:{ports['gateway']}" for host in (LOOPBACK, "localhost")]
        given = [origin for origin in env.get("NOTIFIER_ALLOWED_ORIGINS", "").split(",") if origin]
        env["NOTIFIER_ALLOWED_ORIGINS"] = ",".join([*given, *console])
    return env


class ServiceProcess:
    """One service running as `python -m <module>`, with its output in a log file or inherited."""

    def __init__(
        self,
        spec: ServiceSpec,
        port: int,
        env: Mapping[str, str],
        *,
        log_path: Path | None = None,
    ) -> None:
        self.spec = spec
        self.port = port
        self.env = dict(env)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        """The service's name."""
        return self.spec.name

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:port` of this service."""
        return base_url(self.port)

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._process.pid if self._process is not None and self.is_running else None

    @property
    def is_running(self) -> bool:
        """Whether the process exists and has not exited."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited (negative: killed by that signal)."""
        return None if self._process is None else self._process.poll()

    def start(self) -> None:
        """Launch the process; returns at once (see `wait_ready`)."""
        if self.is_running:
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        argv = [sys.executable, "-m", self.spec.module]
        # Its own process group: a Ctrl-C reaches the runner, which stops services in order.
        if self.log_path is None:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, env=self.env, process_group=0
            )
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                process_group=0,
            )

    def log_tail(self, lines: int = 40) -> str:
        """The end of the service's log, when it logs to a file."""
        if self.log_path is None:
            return "(output goes to the terminal)"
        return log_tail(self.log_path, lines)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Poll `/livez` until it answers 200; raise with the log's tail if the process dies."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=1.0) as client:
            while True:
                if not self.is_running:
                    raise ServiceError(
                        f"{self.name} exited with code {self.returncode} before it was live; "
                        f"its log:\n{self.log_tail()}"
                    )
                try:
                    if client.get("/livez").status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"{self.name} was not live at {self.base_url}/livez within {timeout_s}s; "
                        f"its log:\n{self.log_tail()}"
                    )
                time.sleep(_POLL_S)

    def signal(self, signum: signal.Signals) -> None:
        """Send `signum` to the process if it runs."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to `timeout_s` for the process to exit; its exit code, or None if it runs."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, wait up to `timeout_s` for a clean exit, then SIGKILL; the exit code."""
        self.signal(signal.SIGTERM)
        if self.wait(timeout_s) is None:
            self.kill()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the process, as a crash would, and reap it."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()

    def restart(self, timeout_s: float = 30.0) -> None:
        """Terminate (if running), start again on the same port and wait until it is live."""
        if self.is_running:
            self.terminate()
        self.start()
        self.wait_ready(timeout_s)


def terminate_all(processes: Iterable[ServiceProcess], timeout_s: float = 20.0) -> None:
    """SIGTERM every process at once, wait for each to exit, SIGKILL those that overstay."""
    running = [process for process in processes if process.is_running]
    for process in running:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in running:
        if process.wait(max(0.0, deadline - time.monotonic())) is None:
            process.kill()


def start_services(
    specs: Iterable[ServiceSpec],
    ports: Mapping[str, int],
    *,
    redis_url: str,
    database_url: str,
    jwt_secret: str,
    log_level: str = "INFO",
    queue_names: str = "default",
    log_dir: Path | None = None,
    ready_timeout_s: float = 60.0,
) -> list[ServiceProcess]:
    """Start every service at once, then wait until each is live; stop them all if one is not."""
    processes = [
        ServiceProcess(
            spec,
            ports[spec.name],
            service_environment(
                spec,
                ports,
                redis_url=redis_url,
                database_url=database_url,
                jwt_secret=jwt_secret,
                log_level=log_level,
                queue_names=queue_names,
            ),
            log_path=None if log_dir is None else log_dir / f"{spec.name}.log",
        )
        for spec in specs
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready(ready_timeout_s)
    except BaseException:
        terminate_all(processes)
        raise
    return processes


def run_migrations(database_url: str, timeout_s: float = 120.0) -> None:
    """Upgrade the database at `database_url` to the newest schema (shared.migrations)."""
    done = subprocess.run(
        [sys.executable, "-m", "shared.migrations"],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise ServiceError(f"migrations failed on {database_url}:\n{done.stdout}{done.stderr}")
