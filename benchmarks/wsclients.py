"""`python -m benchmarks.wsclients`: many WebSocket clients of the notifier in one process.

The fan-out and memory scenarios start one or more of these, so the clients' CPU is not the
measuring process's. Protocol, in JSON lines: the process connects every client
(`shared.client`, no reconnects, so a dropped client stays dropped and is counted), prints a
`Ready`, then counts the marked events it receives; it answers each `count` line on stdin with
a `Counts`, and any other line (or the end of stdin) closes every client and prints a
`Report`. Latency is receive time minus the send time in the event's message (`mark`), both
`time.time_ns()` on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

import msgspec
import uvloop
from websockets.exceptions import InvalidHandshake

from devstack.tokens import mint_token
from shared.client import NotifierClosedError, connect
from shared.contracts.events import JobProgressed
from shared.contracts.ws import EventPush, Welcome

COUNT_COMMAND = "count"
# The JWT secret comes through the environment: a command line is visible to `ps`.
SECRET_VARIABLE = "BENCH_JWT_SECRET"  # noqa: S105 - where the secret is, not it
_CONNECTING_AT_ONCE = 50
_MARK_SEPARATOR = ":"


class Ready(msgspec.Struct, frozen=True, kw_only=True):
    """Every client has its welcome, or gave up."""

    connected: int
    failed: int
    errors: tuple[str, ...]
    connect_s: float


class PhaseTally(msgspec.Struct, kw_only=True):
    """Marked events of one phase received by all clients, and their latencies."""

    received: int = 0
    latencies_us: list[int] = msgspec.field(default_factory=list)


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """How many marked events of each phase all clients have received so far."""

    received: dict[str, int]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """What the clients received, by phase, and how many lost their connection early."""

    phases: dict[str, PhaseTally]
    closed_early: int
    unmarked: int


def mark(phase: str, sent_ns: int) -> str:
    """The progress message that tells the clients an event's phase and send time."""
    return f"{phase}{_MARK_SEPARATOR}{sent_ns}"


def read_mark(message: str) -> tuple[str, int] | None:
    """The phase and send time in a marked message; None for any other message."""
    phase, separator, sent = message.rpartition(_MARK_SEPARATOR)
    if not separator or not sent.isdigit():
        return None
    return phase, int(sent)


class _Clients:
    """The clients of this process and what they received."""

    def __init__(self, url: str, secret: str, subs: Sequence[str]) -> None:
        self._url = url
        self._secret = secret
        self._subs = subs
        self._gate = asyncio.Semaphore(_CONNECTING_AT_ONCE)
        self._settled = asyncio.Event()
        self._stopping = False
        self.phases: dict[str, PhaseTally] = {}
        self.connected = 0
        self.errors: list[str] = []
        self.closed_early = 0
        self.unmarked = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Hold every client until `stop` is set, printing `Ready` once all have settled."""
        started = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            holders = [tasks.create_task(self._hold(sub)) for sub in self._subs]
            await self._settled.wait()
            ready = Ready(
                connected=self.connected,
                failed=len(self.errors),
                errors=tuple(self.errors[:5]),
                connect_s=time.monotonic() - started,
            )
            _print_line(msgspec.json.encode(ready))
            await stop.wait()
            self._stopping = True
            for holder in holders:
                holder.cancel()

    async def _hold(self, sub: str) -> None:
        token = mint_token(self._secret, sub, "USER", ttl_s=24 * 3600)
        await self._gate.acquire()
        welcomed = False
        try:
            try:
                async with connect(self._url, token, reconnect=False) as client:
                    async for message in client:
                        if isinstance(message, EventPush):
                            self._count(message, time.time_ns())
                        elif isinstance(message, Welcome) and not welcomed:
                            welcomed = True
                            self._welcomed()
                ended = "closed by the notifier"
            except (OSError, InvalidHandshake, NotifierClosedError) as exc:
                ended = repr(exc)
            if not welcomed:
                self.errors.append(f"{sub}: {ended}")
            elif not self._stopping:
                self.closed_early += 1
        finally:
            # Cancelled (stopping) or failed before its welcome: its place goes to the next.
            if not welcomed:
                self._gate.release()
                self._settle()

    def _welcomed(self) -> None:
        self.connected += 1
        self._gate.release()
        self._settle()

    def _settle(self) -> None:
        if self.connected + len(self.errors) >= len(self._subs):
            self._settled.set()

    def _count(self, push: EventPush, received_ns: int) -> None:
        event = push.event
        marked = read_mark(event.message) if isinstance(event, JobProgressed) else None
        if marked is None:
            self.unmarked += 1
            return
        phase, sent_ns = marked
        tally = self.phases.setdefault(phase, PhaseTally())
        tally.received += 1
        tally.latencies_us.append((received_ns - sent_ns) // 1_000)


def _print_line(line: bytes) -> None:
    sys.stdout.write(line.decode() + "\n")
    sys.stdout.flush()


async def _main(url: str, subs: Sequence[str]) -> None:
    clients = _Clients(url, os.environ[SECRET_VARIABLE], subs)
    stop = asyncio.Event()

    async def obey() -> None:
        # Any other line, or the end of stdin when the parent died, stops the clients.
        while (await asyncio.to_thread(sys.stdin.readline)).strip() == COUNT_COMMAND:
            received = {phase: tally.received for phase, tally in clients.phases.items()}
            _print_line(msgspec.json.encode(Counts(received=received)))
        stop.set()

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(obey())
        await clients.run(stop)
    report = Report(
        phases=clients.phases, closed_early=clients.closed_early, unmarked=clients.unmarked
    )
    _print_line(msgspec.json.encode(report))


def main(argv: Sequence[str] | None = None) -> None:
    """Connect the clients named on the command line and report what they receive."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wsclients", description=__doc__)
    parser.add_argument("--url", required=True, help="the notifier's ws://host:port/ws")
    parser.add_argument("subs", nargs="+", help="one user id per connection")
    arguments = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_main(arguments.url, arguments.subs))


if __name__ == "__main__":
    main()
