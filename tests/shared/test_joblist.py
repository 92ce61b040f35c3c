"""Paging through the listing indexes on a real Redis: order, ties, merging queues, scan budget."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from redis.asyncio import Redis

from shared.contracts.jobs import JobEnvelope
from shared.joblist import SCAN_BUDGET, CursorError, JobFilter, JobPage, decode_cursor, list_jobs
from shared.jobstore import JobStore

QUEUES = ("default", "reports")


def job(queue: str, at_ms: int, owner: str = "alice", job_type: str = "demo.echo") -> JobEnvelope:
    return JobEnvelope(
        id=str(uuid.uuid4()),
        type=job_type,
        queue=queue,
        owner=owner,
        max_attempts=1,
        enqueued_at_ms=at_ms,
        due_at_ms=at_ms,
        payload=msgspec.Raw(b"{}"),
    )


async def every_page(
    redis: Redis, query: JobFilter, limit: int, scan_budget: int = SCAN_BUDGET
) -> list[JobPage]:
    pages = [await list_jobs(redis, query, limit=limit, scan_budget=scan_budget)]
    while pages[-1].next is not None:
        pages.append(
            await list_jobs(
                redis, query, limit=limit, cursor=pages[-1].next, scan_budget=scan_budget
            )
        )
    return pages


async def test_pages_merge_queues_newest_first_and_split_ties_on_one_ms(
    redis: Redis, store: JobStore
) -> None:
    # A batch shares one creation ms: 7 ties, split across pages of 3.
    batch = [job("default", 2_000) for _ in range(7)]
    await store.enqueue_batch(batch)
    others = [job("reports", at) for at in (1_000, 2_500, 3_000)]
    for envelope in others:
        await store.enqueue(envelope)

    pages = await every_page(redis, JobFilter(queues=QUEUES), limit=3)

    listed = [item.id for page in pages for item in page.items]
    ties = sorted((envelope.id for envelope in batch), reverse=True)
    assert listed == [others[2].id, others[1].id, *ties, others[0].id]
    assert [len(page.items) for page in pages] == [3, 3, 3, 1]


async def test_a_rare_match_pages_through_the_scan_budget_without_losing_any(
    redis: Redis, store: JobStore
) -> None:
    common = [job("default", 10_000 + i) for i in range(450)]
    rare = [job("reports", 10_000 + i, job_type="demo.fail") for i in (5, 300)]
    await store.enqueue_batch(common)
    for envelope in rare:
        await store.enqueue(envelope)
    query = JobFilter(queues=QUEUES, type="demo.fail")

    pages = await every_page(redis, query, limit=10, scan_budget=200)

    assert [item.id for page in pages for item in page.items] == [rare[1].id, rare[0].id]
    # Cut short by the budget at least once: a page with fewer items than asked, yet a cursor.
    assert any(page.next is not None and len(page.items) < 10 for page in pages)


async def test_an_owner_filter_reads_the_owners_index_only(redis: Redis, store: JobStore) -> None:
    await store.enqueue_batch([job("default", 5_000, owner="bob") for _ in range(300)])
    mine = job("default", 4_000)
    await store.enqueue(mine)

    page = await list_jobs(redis, JobFilter(queues=QUEUES, owner="alice"), limit=5, scan_budget=10)

    assert [item.id for item in page.items] == [mine.id]
    assert page.next is None


def test_a_cursor_not_made_by_a_listing_is_refused() -> None:
    with pytest.raises(CursorError):
        decode_cursor("not a cursor")
