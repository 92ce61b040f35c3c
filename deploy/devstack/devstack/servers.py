"""Redis and PostgreSQL started from the machine's binaries as child processes of this one.

The servers are children, not daemons, so a test can kill -9 them and start them again on the
same data, and so nothing outlives the process that started them when it stops them.
"""

from __future__ import annotations

import abc
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

import redis

from devstack.ports import LOOPBACK

_POLL_S = 0.05
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


class ServerError(RuntimeError):
    """A server did not start, answer or stop as expected."""


def log_tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class Managed(abc.ABC):
    """A server that `with` starts on entry and stops on exit."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start and wait until it serves."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop and wait until it has exited."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Child(Managed):
    """A server process and its log file: the lifecycle both servers share."""

    def __init__(self, name: str, log_path: Path) -> None:
        self._name = name
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def is_running(self) -> bool:
        """Whether the server process exists and has not exited."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.is_running and self._process else None

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        return self._log_path

    def _spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        os_user: str | None = None,
    ) -> None:
        if self.is_running:
            raise ServerError(f"{self._name} is already running (pid {self.pid})")
        with self._log_path.open("ab") as log:
            # Its own process group: a Ctrl-C in the terminal reaches the runner only, which
            # then stops the servers in order.
            self._process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                process_group=0,
                user=os_user,
                group=os_user,
                extra_groups=None if os_user is None else [],
            )

    def _await(self, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise ServerError(
                    f"{self._name} exited with code {code} while starting; its log:\n"
                    f"{log_tail(self._log_path)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"{self._name} did not become ready within {timeout_s}s; its log:\n"
                    f"{log_tail(self._log_path)}"
                )
            time.sleep(_POLL_S)

    def _signal_and_wait(self, signum: signal.Signals, timeout_s: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and reap it."""
        self._signal_and_wait(signal.SIGKILL, timeout_s=10.0)


class RedisServer(_Child):
    """A redis-server with AOF on (fsync every second) and a password, on 127.0.0.1.

    With `replica_of` (a port on 127.0.0.1) it starts as that server's replica; every server
    authenticates to its master with its own password, so all in one set share it.
    """

    def __init__(
        self,
        directory: Path,
        port: int,
        password: str,
        *,
        binary: str = "redis-server",
        replica_of: int | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__("redis-server", directory / "redis.log")
        self._directory = directory
        self._port = port
        self._password = password
        self._binary = binary
        self._replica_of = replica_of

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self._port

    @property
    def password(self) -> str:
        """The password clients authenticate with."""
        return self._password

    @property
    def directory(self) -> Path:
        """Where its AOF files and log live."""
        return self._directory

    @property
    def url(self) -> str:
        """`redis://:password@127.0.0.1:port/0`."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """The URL of logical database `db`."""
        return f"redis://:{quote(self._password, safe='')}@{LOOPBACK}:{self._port}/{db}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server and wait until it answers PING (after loading its AOF)."""
        binary = shutil.which(self._binary)
        if binary is None:
            raise ServerError(f"{self._binary} not found on PATH")
        self._spawn(
            [
                binary,
                "--port", str(self._port),
                "--bind", LOOPBACK,
                "--dir", str(self._directory),
                "--requirepass", self._password,
                "--masterauth", self._password,
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--daemonize", "no",
                *self._replication_args(),
            ],
        )  # fmt: skip
        self._await(self._answers_ping, timeout_s)

    def _replication_args(self) -> tuple[str, ...]:
        if self._replica_of is None:
            return ()
        return ("--replicaof", LOOPBACK, str(self._replica_of))

    def _answers_ping(self) -> bool:
        return redis_answers_ping(self._port, self._password)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: Redis flushes the AOF and exits; wait for it."""
        self._signal_and_wait(signal.SIGTERM, timeout_s)

    def restart(self, timeout_s: float = 30.0) -> None:
        """Stop (if running) and start again on the same port and data."""
        self.stop(timeout_s)
        self.start(timeout_s)


def redis_answers_ping(port: int, password: str) -> bool:
    """Whether the redis-server on this loopback port answers PING yet."""
    client = redis.Redis(
        host=LOOPBACK,
        port=port,
        password=password,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        # Refused while binding, or BusyLoadingError while replaying the AOF.
        return False
    finally:
        client.close()


def postgres_bindir() -> Path:
    """The directory of the newest PostgreSQL server binaries on this machine."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates.extend(sorted(versions, key=lambda p: _version_key(p.parent.name), reverse=True))
    for bindir in candidates:
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
    raise ServerError("no PostgreSQL binaries found via pg_config --bindir or /usr/lib/postgresql")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


class PostgresServer(_Child):
    """A PostgreSQL server on 127.0.0.1 with trust auth for user `postgres`, initdb'd on demand."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        fsync: bool = True,
        bindir: Path | None = None,
        os_user: str = "postgres",
    ) -> None:
        super().__init__("postgres", data_dir.parent / f"{data_dir.name}.log")
        self._data_dir = data_dir
        self._port = port
        self._fsync = fsync
        self._bindir = bindir
        # PostgreSQL refuses to run as root: when we are root, it runs as this OS user.
        self._os_user = os_user if os.geteuid() == 0 else None

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self._port

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._data_dir

    def url(self, dbname: str = "postgres") -> str:
        """`postgresql+asyncpg://postgres@127.0.0.1:port/dbname`."""
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self._port}/{dbname}"

    def _bin(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = postgres_bindir()
        return str(self._bindir / name)

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def _prepare_data_dir(self) -> None:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._data_dir.chmod(0o700)
        if self._os_user is None:
            return
        shutil.chown(self._data_dir, self._os_user, self._os_user)
        for parent in self._data_dir.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def initdb(self) -> None:
        """Create the cluster if the data directory holds none."""
        self._prepare_data_dir()
        if (self._data_dir / "PG_VERSION").exists():
            return
        argv = [
            self._bin("initdb"),
            "-D", str(self._data_dir),
            "-A", "trust",
            "-U", "postgres",
            "--encoding", "UTF8",
            "--locale", "C",
        ]  # fmt: skip
        if not self._fsync:
            argv.append("--no-sync")
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=self._data_dir,
            env=self._environment(),
            user=self._os_user,
            group=self._os_user,
            extra_groups=None if self._os_user is None else [],
        )
        if done.returncode != 0:
            raise ServerError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def start(self, timeout_s: float = 60.0) -> None:
        """Initdb if needed, start the server and wait until it accepts connections."""
        self.initdb()
        socket_dir = str(self._data_dir)
        if len(socket_dir) + len(f"/.s.PGSQL.{self._port}") > _MAX_SOCKET_PATH:
            socket_dir = ""  # too long for a Unix socket path: TCP only
        settings = {
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": socket_dir,
            "max_connections": "200",
            "fsync": "on" if self._fsync else "off",
        }
        if not self._fsync:
            settings |= {"synchronous_commit": "off", "full_page_writes": "off"}
        argv = [self._bin("postgres"), "-D", str(self._data_dir), "-p", str(self._port)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self._spawn(argv, cwd=self._data_dir, env=self._environment(), os_user=self._os_user)
        self._await(self._accepts_connections, timeout_s)

    def _accepts_connections(self) -> bool:
        probe = subprocess.run(
            [
                self._bin("pg_isready"),
                "-h", LOOPBACK,
                "-p", str(self._port),
                "-U", "postgres",
                "-d", "postgres",
                "-t", "1",
            ],
            capture_output=True,
            check=False,
        )  # fmt: skip
        return probe.returncode == 0

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGINT (fast shutdown: roll back sessions, checkpoint) and wait for it."""
        self._signal_and_wait(signal.SIGINT, timeout_s)

    def restart(self, timeout_s: float = 60.0) -> None:
        """Stop (if running) and start again on the same port and data."""
        self.stop(timeout_s)
        self.start(timeout_s)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run one SQL command with psql and return its unaligned, tuples-only output."""
        done = subprocess.run(
            [
                self._bin("psql"),
                "-X", "-q", "-tA",
                "-v", "ON_ERROR_STOP=1",
                "-h", LOOPBACK,
                "-p", str(self._port),
                "-U", "postgres",
                "-d", dbname,
                "-c", sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**self._environment(), "PGCONNECT_TIMEOUT": "10"},
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerError(f"psql failed on {sql!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def database_exists(self, name: str) -> bool:
        """Whether database `name` exists."""
        _check_name(name)
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608 - name checked
        return self.psql(query) == "1"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (a copy of `template` when given) and return its URL."""
        _check_name(name)
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            _check_name(template)
            sql += f' TEMPLATE "{template}"'
        self.psql(sql)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting its sessions."""
        _check_name(name)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_name(name: str) -> None:
    # Names are interpolated into SQL; allowing only identifier characters keeps that safe.
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
