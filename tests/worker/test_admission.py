"""Admission: slots go to waiting lanes by weight, and no lane with a waiting job starves."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.streams import Lane
from worker.admission import (
    Admission,
    WeightedRoundRobin,
    lane_weights,
    parse_queue_weights,
)

HIGH, NORMAL, LOW = Lane("q", "high"), Lane("q", "normal"), Lane("q", "low")
WEIGHTS = lane_weights([HIGH, NORMAL, LOW], {})


def test_priorities_weigh_nine_three_one_times_the_queue_weight() -> None:
    weights = lane_weights([HIGH, LOW, Lane("r", "high")], {"r": 2})
    assert weights == {HIGH: 9, LOW: 1, Lane("r", "high"): 18}


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 20), min_size=1))
def test_busy_lanes_get_starts_in_proportion_to_their_weights(weights: dict[str, int]) -> None:
    lanes = {Lane(name): weight for name, weight in weights.items()}
    order = WeightedRoundRobin(lanes)
    rounds = 5
    picks = Counter(order.pick(lanes) for _ in range(rounds * sum(lanes.values())))
    assert picks == {lane: rounds * weight for lane, weight in lanes.items()}


@given(
    st.lists(st.sampled_from([HIGH, NORMAL, LOW]), min_size=1, max_size=200),
    st.sampled_from([HIGH, NORMAL, LOW]),
)
def test_a_waiting_lane_is_served_within_one_round_of_the_weights(
    noise: list[Lane], starved: Lane
) -> None:
    order = WeightedRoundRobin(WEIGHTS)
    for lane in noise:
        order.pick([lane])
    picks = [order.pick([HIGH, NORMAL, LOW]) for _ in range(sum(WEIGHTS.values()))]
    assert starved in picks


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", {}), ("default=3, reports=1", {"default": 3, "reports": 1})],
)
def test_queue_weights_parse(text: str, expected: dict[str, int]) -> None:
    assert parse_queue_weights(text) == expected


@pytest.mark.parametrize("text", ["default", "default=0", "default=x", "=3", "a=1001"])
def test_bad_queue_weights_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="QUEUE=WEIGHT"):
        parse_queue_weights(text)


async def test_a_freed_slot_goes_to_high_nine_times_as_often_and_low_is_never_starved() -> None:
    admission = Admission(1, WEIGHTS)
    started: list[str] = []

    async def job(lane: Lane, name: str) -> None:
        async with admission.slot(lane):
            started.append(name)
            await asyncio.sleep(0)

    async with admission.slot(HIGH):
        tasks = [asyncio.create_task(job(HIGH, f"h{i}")) for i in range(18)]
        tasks += [asyncio.create_task(job(LOW, f"l{i}")) for i in range(2)]
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)

    first_ten = started[:10]
    assert sum(name.startswith("l") for name in first_ten) == 1
    assert len(started) == 20


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    admission = Admission(1, WEIGHTS)
    started: list[str] = []

    async def job(lane: Lane, name: str) -> None:
        async with admission.slot(lane):
            started.append(name)

    async with admission.slot(NORMAL):
        quitter = asyncio.create_task(job(HIGH, "quitter"))
        stayer = asyncio.create_task(job(LOW, "stayer"))
        await asyncio.sleep(0)
        quitter.cancel()
        await asyncio.sleep(0)
    await stayer

    assert started == ["stayer"]
    assert quitter.cancelled()


async def test_resizing_admits_waiting_jobs_at_once_or_after_running_ones_finish() -> None:
    admission = Admission(1, WEIGHTS)
    running: list[str] = []
    release = {name: asyncio.Event() for name in "abcd"}

    async def job(name: str) -> None:
        async with admission.slot(NORMAL):
            running.append(name)
            await release[name].wait()
            running.remove(name)

    tasks = {name: asyncio.create_task(job(name)) for name in "abc"}
    await asyncio.sleep(0)
    assert running == ["a"]

    admission.resize(3)  # raised: the two waiting start now
    await asyncio.sleep(0)
    assert sorted(running) == ["a", "b", "c"]

    admission.resize(1)  # lowered: nothing stops, but no new job starts until two have ended
    tasks["d"] = asyncio.create_task(job("d"))
    for name in "ab":
        release[name].set()
        await asyncio.sleep(0.01)
        assert "d" not in running
    release["c"].set()
    await asyncio.sleep(0.01)
    assert running == ["d"]
    release["d"].set()
    await asyncio.gather(*tasks.values())
