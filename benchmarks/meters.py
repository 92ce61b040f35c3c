"""CPU and memory of processes while a load runs, read with psutil."""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec
import psutil

MIB = 2**20


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid`."""
    return int(psutil.Process(pid).memory_info().rss)


class CpuMeter:
    """The CPU a set of processes used between `start` and `stop`: seconds, and % of one core.

    A process that exits meanwhile counts with the time it had used when last read.
    """

    def __init__(self, pids: Iterable[int]) -> None:
        self._processes = [psutil.Process(pid) for pid in pids]
        self._last_cpu_s = [0.0] * len(self._processes)
        self._started_cpu_s = 0.0
        self._started_at = 0.0
        self._percent: float | None = None
        self.used_s = 0.0

    def start(self) -> CpuMeter:
        """Begin the window."""
        self._started_cpu_s = self._cpu_s()
        self._started_at = time.monotonic()
        return self

    def stop(self) -> float:
        """End the window; the % of one core used in it."""
        elapsed_s = time.monotonic() - self._started_at
        self.used_s = self._cpu_s() - self._started_cpu_s
        self._percent = 100 * self.used_s / elapsed_s if elapsed_s > 0 else 0.0
        return self._percent

    @property
    def percent(self) -> float:
        """The % of one core of the window that `stop` ended."""
        if self._percent is None:
            raise RuntimeError("the CPU window has not been stopped")
        return self._percent

    def _cpu_s(self) -> float:
        for index, process in enumerate(self._processes):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            self._last_cpu_s[index] = times.user + times.system
        return sum(self._last_cpu_s)


class MachineCpu(msgspec.Struct, frozen=True, kw_only=True):
    """CPU over a window in % of one core: all processes, this run's, and everyone else's."""

    all_percent: float
    run_percent: float
    other_percent: float


class MachineMeter:
    """The machine's CPU between `start` and `stop`, split between this run and the rest.

    This run is this process and its descendants (Redis, PostgreSQL, the services, client
    processes). The machine is shared, so the rest shows how much the figures were squeezed.
    """

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._started_at = 0.0
        self._machine_s = 0.0
        self._own_s = 0.0
        self._descendants: dict[int, float] = {}

    def start(self) -> MachineMeter:
        """Begin the window."""
        self._started_at = time.monotonic()
        self._machine_s = _machine_busy_s()
        self._own_s = self._own_cpu_s()
        self._descendants = self._descendants_cpu_s()
        return self

    def stop(self) -> MachineCpu:
        """End the window."""
        elapsed_s = max(time.monotonic() - self._started_at, 1e-9)
        machine_s = _machine_busy_s() - self._machine_s
        # Reaped children count in our own times; live descendants by their growth.
        run_s = self._own_cpu_s() - self._own_s
        for pid, used_s in self._descendants_cpu_s().items():
            run_s += used_s - self._descendants.get(pid, 0.0)
        return MachineCpu(
            all_percent=100 * machine_s / elapsed_s,
            run_percent=100 * run_s / elapsed_s,
            other_percent=100 * max(machine_s - run_s, 0.0) / elapsed_s,
        )

    def _own_cpu_s(self) -> float:
        times = self._me.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def _descendants_cpu_s(self) -> dict[int, float]:
        found: dict[int, float] = {}
        for child in self._me.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue  # exited, or not ours to read
            found[child.pid] = times.user + times.system
        return found


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    # `guest` time is already part of `user` on Linux, so it is not added again.
    return sum(
        getattr(times, field, 0.0)
        for field in ("user", "nice", "system", "irq", "softirq", "steal")
    )
