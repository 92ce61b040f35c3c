"""A Redis Cluster of masters (no replicas) started from the machine's redis-server binaries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.crc import key_slot

from devstack.ports import LOOPBACK, free_port
from devstack.servers import Managed, ServerError, _Child, log_tail, redis_answers_ping

_POLL_S = 0.1


class ClusterNode(_Child):
    """One cluster-enabled redis-server with AOF on and a password, on 127.0.0.1."""

    def __init__(self, directory: Path, port: int, bus_port: int, password: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(f"redis-server :{port}", directory / "redis.log")
        self.directory = directory
        self.port = port
        self.bus_port = bus_port
        self._password = password

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the node and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server not found on PATH")
        self._spawn(
            [
                binary,
                "--port", str(self.port),
                # Its own bus port: port + 10000 may be taken, or beyond 65535.
                "--cluster-port", str(self.bus_port),
                "--bind", LOOPBACK,
                "--dir", str(self.directory),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
                "--requirepass", self._password,
                "--masterauth", self._password,
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--daemonize", "no",
            ],
        )  # fmt: skip
        self._await(self._answers_ping, timeout_s)

    def _answers_ping(self) -> bool:
        return redis_answers_ping(self.port, self._password)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and wait for the node to exit."""
        self._signal_and_wait(signal.SIGTERM, timeout_s)


class RedisCluster(Managed):
    """`masters` cluster nodes on free ports, every slot assigned, no replicas."""

    def __init__(self, directory: Path, password: str, *, masters: int = 3) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self._directory = directory
        self._password = password
        self.nodes = [
            ClusterNode(directory / f"node-{index}", free_port(), free_port(), password)
            for index in range(masters)
        ]

    @property
    def password(self) -> str:
        """The password of every node."""
        return self._password

    @property
    def url(self) -> str:
        """`redis://:password@127.0.0.1:port/0` of the first node; clients find the others."""
        return f"redis://:{quote(self._password, safe='')}@{LOOPBACK}:{self.nodes[0].port}/0"

    def environment(self) -> dict[str, str]:
        """The REDIS_* variables that point a service at this cluster."""
        return {"REDIS_URL": self.url, "REDIS_CLUSTER": "true"}

    def start(self, timeout_s: float = 60.0) -> None:
        """Start every node, join them and assign the slots; return once the cluster is ok."""
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout_s)
            self._await_ok(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _create(self, timeout_s: float) -> None:
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:
            raise ServerError("redis-cli not found on PATH")
        done = subprocess.run(
            [
                redis_cli,
                "--cluster", "create",
                *(f"{LOOPBACK}:{node.port}" for node in self.nodes),
                "--cluster-replicas", "0",
                "--cluster-yes",
            ],
            # From the environment, so the password is not on a command line `ps` shows.
            env={**os.environ, "REDISCLI_AUTH": self._password},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")

    def _await_ok(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.nodes)
        while pending:
            node = pending[0]
            client = redis.Redis(host=LOOPBACK, port=node.port, password=self._password)
            try:
                info: dict[str, str] = client.cluster("INFO")
            finally:
                client.close()
            if info.get("cluster_state") == "ok":
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise ServerError(
                    f"cluster not ok within {timeout_s}s on :{node.port}: {info}\n"
                    f"{log_tail(node.log_path)}"
                )
            time.sleep(_POLL_S)

    def client(self) -> SyncRedisCluster:
        """A synchronous cluster client, for tests and tools."""
        return SyncRedisCluster.from_url(self.url)

    def master_port_of(self, key: str) -> int:
        """The port of the master that serves `key`'s slot."""
        slot = key_slot(key.encode())
        client = redis.Redis(host=LOOPBACK, port=self.nodes[0].port, password=self._password)
        try:
            # CLUSTER SLOTS: [[first slot, last slot, [master host, master port, id, ...], ...]]
            ranges: list[list[Any]] = client.cluster("SLOTS")
        finally:
            client.close()
        for first, last, master, *_replicas in ranges:
            if first <= slot <= last:
                return int(master[1])
        raise ServerError(f"no master serves slot {slot} of {key!r}")

    def stop(self) -> None:
        """Stop every node that runs."""
        for node in self.nodes:
            node.stop()
