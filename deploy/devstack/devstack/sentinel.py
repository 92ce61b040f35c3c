"""A Redis master, one replica and three sentinels started from the machine's redis-server.

Failover is tuned to take seconds (a master is down after 1 s without an answer), so that a
test can kill the master and see the replica promoted while it waits.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import redis

from devstack.ports import LOOPBACK, free_port
from devstack.servers import Managed, RedisServer, ServerError, _Child, log_tail, redis_answers_ping

_POLL_S = 0.1
SENTINELS = 3
# Sentinels that must agree the master is down before one of them fails it over.
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelNode(_Child):
    """One `redis-server --sentinel` watching `master_name`, with a config file of its own."""

    def __init__(
        self,
        directory: Path,
        port: int,
        *,
        master_name: str,
        master_port: int,
        data_password: str,
        password: str,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(f"redis-sentinel :{port}", directory / "sentinel.log")
        self.directory = directory
        self.port = port
        self._master_name = master_name
        self._master_port = master_port
        self._data_password = data_password
        self._password = password

    def start(self, timeout_s: float = 30.0) -> None:
        """Write its config (Sentinel rewrites it as it learns) and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server not found on PATH")
        config = self.directory / "sentinel.conf"
        name = self._master_name
        config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    f"bind {LOOPBACK}",
                    f'dir "{self.directory}"',
                    # Clients and the other sentinels authenticate with it.
                    f'requirepass "{self._password}"',
                    f"sentinel monitor {name} {LOOPBACK} {self._master_port} {QUORUM}",
                    f'sentinel auth-pass {name} "{self._data_password}"',
                    f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {name} 1",
                    "",
                ]
            )
        )
        config.chmod(0o600)
        self._spawn([binary, str(config), "--sentinel"])
        self._await(lambda: redis_answers_ping(self.port, self._password), timeout_s)

    def client(self) -> redis.Redis:
        """A synchronous client of this sentinel."""
        return redis.Redis(
            host=LOOPBACK,
            port=self.port,
            password=self._password,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and wait for it to exit."""
        self._signal_and_wait(signal.SIGTERM, timeout_s)


class RedisSentinel(Managed):
    """A master, its replica and three sentinels on free ports, sharing one data password."""

    def __init__(
        self,
        directory: Path,
        password: str,
        sentinel_password: str,
        *,
        master_name: str = "mymaster",
    ) -> None:
        self._password = password
        self._sentinel_password = sentinel_password
        self.master_name = master_name
        master_port = free_port()
        self.servers = [
            RedisServer(directory / "redis-0", master_port, password),
            RedisServer(directory / "redis-1", free_port(), password, replica_of=master_port),
        ]
        self.sentinels = [
            SentinelNode(
                directory / f"sentinel-{index}",
                free_port(),
                master_name=master_name,
                master_port=master_port,
                data_password=password,
                password=sentinel_password,
            )
            for index in range(SENTINELS)
        ]

    @property
    def url(self) -> str:
        """A URL with the data password for REDIS_URL; its host and port are the first master's."""
        return self.servers[0].url

    @property
    def sentinel_addresses(self) -> str:
        """`REDIS_SENTINELS`: host:port of every sentinel, comma-separated."""
        return ",".join(f"{LOOPBACK}:{node.port}" for node in self.sentinels)

    def environment(self) -> dict[str, str]:
        """The REDIS_* variables that point a service at this set through its sentinels."""
        return {
            "REDIS_URL": self.url,
            "REDIS_SENTINELS": self.sentinel_addresses,
            "REDIS_SENTINEL_MASTER": self.master_name,
            "REDIS_SENTINEL_PASSWORD": self._sentinel_password,
        }

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the servers and sentinels; return once every sentinel sees the whole set."""
        try:
            for server in self.servers:
                server.start()
            self._await("the replica to sync", self._replica_synced, timeout_s)
            for node in self.sentinels:
                node.start()
            self._await("the sentinels to know each other", self._sentinels_agree, timeout_s)
        except BaseException:
            self.stop()
            raise

    def master_port(self) -> int:
        """The master's port as every sentinel reports it; a ServerError while they disagree."""
        ports = set()
        for node in self.sentinels:
            client = node.client()
            try:
                # (host, port), or None when it knows no such master.
                address = cast(
                    tuple[str, int] | None,
                    client.sentinel_get_master_addr_by_name(self.master_name),
                )
            finally:
                client.close()
            if address is None:
                raise ServerError(f"sentinel :{node.port} knows no master {self.master_name!r}")
            ports.add(int(address[1]))
        if len(ports) != 1:
            raise ServerError(f"the sentinels disagree on the master: ports {sorted(ports)}")
        (port,) = ports
        return port

    def server_on(self, port: int) -> RedisServer:
        """The data server listening on `port`."""
        (server,) = [server for server in self.servers if server.port == port]
        return server

    def await_replicated(self, timeout_s: float = 10.0) -> None:
        """Wait until every replica has applied all the master has written so far."""
        master = self.server_on(self.master_port())
        written = int(self._replication(master)["master_repl_offset"])
        replicas = [server for server in self.servers if server is not master and server.is_running]

        def caught_up() -> bool:
            return all(
                int(self._replication(replica).get("slave_repl_offset", -1)) >= written
                for replica in replicas
            )

        self._await("the replica to catch up", caught_up, timeout_s)

    def await_failover(self, from_port: int, timeout_s: float = 30.0) -> int:
        """Wait until every sentinel names a master other than `from_port`; its port."""

        def moved() -> bool:
            try:
                return self.master_port() != from_port
            except (ServerError, redis.RedisError):
                return False

        self._await(f"a failover away from :{from_port}", moved, timeout_s)
        new_port = self.master_port()
        # Promoted: the replica answers as a master that takes writes.
        self._await("the new master to take writes", lambda: self._is_master(new_port), timeout_s)
        return new_port

    def stop(self) -> None:
        """Stop the sentinels first, so that none fails over a master being stopped."""
        for node in self.sentinels:
            node.stop()
        for server in self.servers:
            server.stop()

    def _client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(
            host=LOOPBACK,
            port=server.port,
            password=self._password,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )

    def _replication(self, server: RedisServer) -> dict[str, str]:
        client = self._client(server)
        try:
            info: dict[str, object] = client.info("replication")
        finally:
            client.close()
        return {key: str(value) for key, value in info.items()}

    def _replica_synced(self) -> bool:
        return self._replication(self.servers[1]).get("master_link_status") == "up"

    def _is_master(self, port: int) -> bool:
        return self._replication(self.server_on(port)).get("role") == "master"

    def _sentinels_agree(self) -> bool:
        for node in self.sentinels:
            client = node.client()
            try:
                state = cast(dict[str, Any], client.sentinel_master(self.master_name))
            finally:
                client.close()
            if state["num-other-sentinels"] != SENTINELS - 1 or state["num-slaves"] != 1:
                return False
        return True

    def _await(self, what: str, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"{node.log_path}:\n{log_tail(node.log_path, 10)}"
                    for node in (*self.servers, *self.sentinels)
                )
                raise ServerError(f"timed out after {timeout_s}s waiting for {what}\n{logs}")
            time.sleep(_POLL_S)
