"""The coalescer: requests made together go out in one batch, each caller gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from shared.coalesce import Coalescer


class Recorder:
    """A `send` that answers each request with its double and notes every batch it got."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self._fail_on = fail_on

    async def send(self, batch: list[int]) -> list[int]:
        self.batches.append(batch)
        await asyncio.sleep(0)
        if self._fail_on in batch:
            raise ValueError(f"refused {self._fail_on}")
        return [request * 2 for request in batch]


async def test_requests_made_together_go_in_one_batch_and_each_caller_gets_its_answer() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=100)

    answers = await asyncio.gather(*(coalescer.submit(n) for n in range(10)))

    assert answers == [n * 2 for n in range(10)]
    assert recorder.batches == [list(range(10))]


async def test_a_lone_request_is_sent_at_once_on_its_own() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=100)

    assert await coalescer.submit(7) == 14
    assert await coalescer.submit(8) == 16
    assert recorder.batches == [[7], [8]]


async def test_batches_hold_at_most_max_batch_requests() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=4)

    answers = await asyncio.gather(*(coalescer.submit(n) for n in range(10)))

    assert answers == [n * 2 for n in range(10)]
    assert [len(batch) for batch in recorder.batches] == [4, 4, 2]


async def test_requests_made_while_a_batch_is_under_way_go_in_the_next_one() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=100)

    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first batch is being sent now
    later = list(await asyncio.gather(coalescer.submit(2), coalescer.submit(3)))

    assert (await first, later) == (2, [4, 6])
    assert recorder.batches == [[1], [2, 3]]


async def test_a_failed_batch_fails_each_of_its_callers_and_no_other() -> None:
    recorder = Recorder(fail_on=3)
    coalescer = Coalescer(recorder.send, max_batch=2)

    outcomes = await asyncio.gather(
        *(coalescer.submit(n) for n in range(1, 6)), return_exceptions=True
    )

    assert outcomes[0:2] == [2, 4]
    assert all(isinstance(outcome, ValueError) for outcome in outcomes[2:4])
    assert outcomes[4] == 10


async def test_a_caller_that_gives_up_does_not_hold_back_the_others() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, max_batch=100)

    impatient = asyncio.ensure_future(coalescer.submit(1))
    patient = asyncio.ensure_future(coalescer.submit(2))
    await asyncio.sleep(0)
    impatient.cancel()

    assert await patient == 4
    with pytest.raises(asyncio.CancelledError):
        await impatient
