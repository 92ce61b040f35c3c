"""Starting `benchmarks.wsclients` processes, and merging what they report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec

from benchmarks.wsclients import COUNT_COMMAND, SECRET_VARIABLE, Counts, PhaseTally, Ready, Report
from devstack.servers import log_tail

_REPO_ROOT = Path(__file__).resolve().parents[1]
# A report carries every latency: a few MB for the full fan-out scenario.
_LINE_LIMIT_BYTES = 256 * 2**20
_EXIT_TIMEOUT_S = 30.0


class ClientProcessError(RuntimeError):
    """A client process died or did not answer in time."""


class ClientProcesses:
    """Client processes holding one connection per entry of `subs`, spread evenly."""

    def __init__(
        self,
        url: str,
        secret: str,
        subs: Sequence[str],
        *,
        processes: int,
        log_dir: Path,
    ) -> None:
        self._url = url
        self._secret = secret
        self._shares = [list(subs[index::processes]) for index in range(processes)]
        self._shares = [share for share in self._shares if share]
        self._log_dir = log_dir
        self._children: list[tuple[asyncio.subprocess.Process, Path]] = []

    @property
    def pids(self) -> list[int]:
        """The process ids of the client processes."""
        return [child.pid for child, _log in self._children]

    async def start(self, timeout_s: float) -> Ready:
        """Start every process and wait until each has settled all its connections."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for index, share in enumerate(self._shares):
            log_path = self._log_dir / f"wsclients-{os.getpid()}-{index}.log"
            with log_path.open("ab") as log:
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "benchmarks.wsclients",
                    "--url",
                    self._url,
                    *share,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    cwd=_REPO_ROOT,
                    env={**os.environ, SECRET_VARIABLE: self._secret},
                    limit=_LINE_LIMIT_BYTES,
                )
            self._children.append((child, log_path))
        readies = [
            msgspec.json.decode(await self._line(child, log, timeout_s), type=Ready)
            for child, log in self._children
        ]
        return Ready(
            connected=sum(ready.connected for ready in readies),
            failed=sum(ready.failed for ready in readies),
            errors=tuple(error for ready in readies for error in ready.errors)[:5],
            connect_s=max(ready.connect_s for ready in readies),
        )

    async def received(self, timeout_s: float) -> dict[str, int]:
        """How many marked events of each phase the clients of every process have received."""
        await self._tell(f"{COUNT_COMMAND}\n".encode())
        totals: dict[str, int] = {}
        for child, log in self._children:
            counts = msgspec.json.decode(await self._line(child, log, timeout_s), type=Counts)
            for phase, received in counts.received.items():
                totals[phase] = totals.get(phase, 0) + received
        return totals

    async def stop(self, timeout_s: float) -> Report:
        """Close every client and merge the processes' reports."""
        await self._tell(b"stop\n")
        reports = [
            msgspec.json.decode(await self._line(child, log, timeout_s), type=Report)
            for child, log in self._children
        ]
        await self.close()
        return merge_reports(reports)

    async def close(self) -> None:
        """Make sure every process has exited (killing those that linger)."""
        for child, _log in self._children:
            if child.returncode is None and child.stdin is not None:
                child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), _EXIT_TIMEOUT_S)
            except TimeoutError:
                child.kill()
                await child.wait()
        self._children = []

    async def _tell(self, line: bytes) -> None:
        for child, _log in self._children:
            if child.stdin is not None:
                child.stdin.write(line)
                await child.stdin.drain()

    @staticmethod
    async def _line(child: asyncio.subprocess.Process, log: Path, timeout_s: float) -> bytes:
        if child.stdout is None:
            raise ClientProcessError("client process has no stdout")
        try:
            line = await asyncio.wait_for(child.stdout.readline(), timeout_s)
        except TimeoutError as exc:
            raise ClientProcessError(f"client process silent for {timeout_s}s") from exc
        if not line:
            raise ClientProcessError(f"client process exited; its log:\n{log_tail(log)}")
        return line


def merge_reports(reports: Sequence[Report]) -> Report:
    """One report of what every process received."""
    phases: dict[str, PhaseTally] = {}
    for report in reports:
        for phase, tally in report.phases.items():
            merged = phases.setdefault(phase, PhaseTally())
            merged.received += tally.received
            merged.latencies_us.extend(tally.latencies_us)
    return Report(
        phases=phases,
        closed_early=sum(report.closed_early for report in reports),
        unmarked=sum(report.unmarked for report in reports),
    )


@contextlib.asynccontextmanager
async def client_processes(
    url: str, secret: str, subs: Sequence[str], *, processes: int, log_dir: Path
) -> AsyncIterator[ClientProcesses]:
    """Client processes that are gone, whatever happens, when the block ends."""
    clients = ClientProcesses(url, secret, subs, processes=processes, log_dir=log_dir)
    try:
        yield clients
    finally:
        await clients.close()
