"""The queues' warn checks, judged on the poller's latest snapshot (no read of their own):
lag over a limit, an oldest pending job older than a limit, dead letters growing.

Dead letters grow when reads within the last `window_s` saw a queue's count rise: one new dead
letter warns for a window, long enough for whoever polls the health document to see it, then the
check passes again unless more arrive. A window no longer than the poll interval compares each
poll with the previous one only.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from health.aggregate import Finding
from health.probes import Probe
from shared.queuestats import QueueSnapshot


class StaleFiguresError(Exception):
    """The poller has not read the queues lately: nothing to judge."""


class DeadLetterTrend:
    """Dead-letter counts per queue read within the last `window_s`, and the newest read at
    least that old to compare the first of them with (pure)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def add(self, at_s: float, counts: Mapping[str, int]) -> None:
        """Counts read at `at_s` (monotonic); keeps the newest sample at least a window old."""
        self._samples.append((at_s, dict(counts)))
        while len(self._samples) > 2 and self._samples[1][0] <= at_s - self._window_s:
            self._samples.popleft()

    def growth(self) -> dict[str, int]:
        """Per queue, the dead letters added within the window: every rise between consecutive
        reads, so a purge meanwhile hides none that came after it."""
        added: dict[str, int] = {}
        samples = (counts for _at_s, counts in self._samples)
        for earlier, later in itertools.pairwise(samples):
            for queue, count in later.items():
                if queue in earlier:
                    added[queue] = added.get(queue, 0) + max(count - earlier[queue], 0)
        return added


class QueueWatch:
    """A sink of the queue poller: the latest snapshot and the dead letters' trend."""

    def __init__(
        self,
        *,
        stale_after_s: float,
        dead_letters_window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._snapshot: QueueSnapshot | None = None
        self._read_at_s = 0.0
        self.dead_letters = DeadLetterTrend(dead_letters_window_s)

    def update(self, snapshot: QueueSnapshot) -> None:
        """A fresh read of every queue."""
        self._snapshot = snapshot
        self._read_at_s = self._clock()
        counts = {queue.queue: queue.dead_letters for queue in snapshot.queues}
        self.dead_letters.add(self._read_at_s, counts)

    def failed(self) -> None:
        """A read failed: the last snapshot ages until it is stale."""

    def current(self) -> QueueSnapshot:
        """The latest snapshot, or StaleFiguresError when it is too old to judge by."""
        if self._snapshot is None:
            raise StaleFiguresError("the queues have not been read yet")
        age_s = self._clock() - self._read_at_s
        if age_s > self._stale_after_s:
            raise StaleFiguresError(f"the queues were last read {age_s:.1f} s ago")
        return self._snapshot


def _at(snapshot: QueueSnapshot) -> datetime:
    return datetime.fromtimestamp(snapshot.at_ms / 1000, UTC)


def lag_findings(snapshot: QueueSnapshot, limit: int) -> list[Finding]:
    """Per queue: jobs that no worker has read yet, over all its lanes; warns above `limit`."""
    findings = []
    for queue in snapshot.queues:
        lag = sum(lane.lag for lane in snapshot.lanes if lane.queue == queue.queue)
        findings.append(
            Finding(
                ok=lag <= limit,
                component_id=queue.queue,
                observed_value=lag,
                observed_unit="jobs",
                time=_at(snapshot),
                output=None if lag <= limit else f"{lag} jobs wait unread, over {limit}",
            )
        )
    return findings


def pending_age_findings(snapshot: QueueSnapshot, limit_s: float) -> list[Finding]:
    """Per queue: the age of its oldest job read but not finished; warns above `limit_s`."""
    findings = []
    for queue in snapshot.queues:
        age_s = max(
            (lane.oldest_pending_age_s for lane in snapshot.lanes if lane.queue == queue.queue),
            default=0.0,
        )
        findings.append(
            Finding(
                ok=age_s <= limit_s,
                component_id=queue.queue,
                observed_value=age_s,
                observed_unit="s",
                time=_at(snapshot),
                output=(
                    None
                    if age_s <= limit_s
                    else f"the oldest pending job is {age_s:.0f} s old, over {limit_s:g} s"
                ),
            )
        )
    return findings


def dead_letter_findings(
    snapshot: QueueSnapshot, added: Mapping[str, int], window_s: float
) -> list[Finding]:
    """Per queue: its dead letters; warns when some were `added` within the window."""
    findings = []
    for queue in snapshot.queues:
        new = added.get(queue.queue, 0)
        findings.append(
            Finding(
                ok=new == 0,
                component_id=queue.queue,
                observed_value=queue.dead_letters,
                observed_unit="jobs",
                time=_at(snapshot),
                output=(
                    f"{new} new dead letters within the last {window_s:g} s "
                    f"({queue.dead_letters} in all)"
                    if new
                    else None
                ),
            )
        )
    return findings


def queue_lag(watch: QueueWatch, limit: int) -> Probe:
    """The lag check on the watch's latest snapshot."""

    async def probe() -> list[Finding]:
        return lag_findings(watch.current(), limit)

    return probe


def oldest_pending(watch: QueueWatch, limit_s: float) -> Probe:
    """The oldest pending job check on the watch's latest snapshot."""

    async def probe() -> list[Finding]:
        return pending_age_findings(watch.current(), limit_s)

    return probe


def dead_letters_growing(watch: QueueWatch, window_s: float) -> Probe:
    """The dead letters check on the watch's latest snapshot and trend."""

    async def probe() -> list[Finding]:
        return dead_letter_findings(watch.current(), watch.dead_letters.growth(), window_s)

    return probe
