"""Which waiting job starts next when a slot frees: weighted by queue and priority, never starving.

Every lane (a queue's jobs of one priority) has a weight: its queue's weight times its priority's.
Slots go to waiting lanes by smooth weighted round robin, so over time each busy lane gets starts
in proportion to its weight, and a lane with a job waiting is served within one round of the
weights: a low-priority job is never starved by a flood of high-priority ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping

from shared.contracts.jobs import Priority
from shared.streams import Lane

PRIORITY_WEIGHTS: Mapping[Priority, int] = {"high": 9, "normal": 3, "low": 1}


def parse_queue_weights(text: str) -> dict[str, int]:
    """Queue weights from a setting like "default=3,reports=1"; unnamed queues weigh 1."""
    weights: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        queue, _, weight = item.partition("=")
        weight = weight.strip()
        if not queue.strip() or not weight.isdigit() or not 1 <= int(weight) <= 1000:
            raise ValueError(f"{item!r} is not QUEUE=WEIGHT with a weight from 1 to 1000")
        weights[queue.strip()] = int(weight)
    return weights


def lane_weights(lanes: Iterable[Lane], queue_weights: Mapping[str, int]) -> dict[Lane, int]:
    """Each lane's weight: its queue's weight (1 unless set) times its priority's."""
    return {
        lane: queue_weights.get(lane.queue, 1) * PRIORITY_WEIGHTS[lane.priority] for lane in lanes
    }


class WeightedRoundRobin:
    """Smooth weighted round robin over the lanes that have someone waiting (pure, no I/O)."""

    def __init__(self, weights: Mapping[Lane, int]) -> None:
        self._weights = dict(weights)
        self._credit = dict.fromkeys(self._weights, 0)

    def pick(self, waiting: Iterable[Lane]) -> Lane:
        """The lane to serve next among `waiting` (not empty)."""
        candidates = list(dict.fromkeys(waiting))
        total = 0
        for lane in candidates:
            self._credit[lane] += self._weights[lane]
            total += self._weights[lane]
        chosen = max(candidates, key=lambda lane: self._credit[lane])
        self._credit[chosen] -= total
        return chosen


class Admission:
    """At most `slots` jobs run at once; waiting ones are admitted by lane weight."""

    def __init__(self, slots: int, weights: Mapping[Lane, int]) -> None:
        self._slots = slots
        self._free = slots
        self._order = WeightedRoundRobin(weights)
        self._waiting: dict[Lane, deque[asyncio.Future[None]]] = {lane: deque() for lane in weights}

    @contextlib.asynccontextmanager
    async def slot(self, lane: Lane) -> AsyncIterator[None]:
        """Hold a slot for one job of `lane` while the block runs."""
        await self._acquire(lane)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, lane: Lane) -> None:
        if self._free > 0 and not any(self._waiting.values()):
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[lane].append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                # The slot was handed over just as the waiter gave up: pass it on.
                self._release()
            else:
                self._waiting[lane].remove(turn)
            raise

    def resize(self, slots: int) -> None:
        """Run at most `slots` jobs at once from now on (the runtime setting). When lowered,
        running jobs finish and their slots are not handed on until the count fits."""
        self._free += slots - self._slots
        self._slots = slots
        while self._free > 0 and any(self._waiting.values()):
            self._free -= 1
            self._hand_over()

    def _release(self) -> None:
        if self._free < 0 or not any(self._waiting.values()):
            self._free += 1
            return
        self._hand_over()

    def _hand_over(self) -> None:
        waiting = [lane for lane, turns in self._waiting.items() if turns]
        self._waiting[self._order.pick(waiting)].popleft().set_result(None)
