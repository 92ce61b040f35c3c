"""Recent log lines in Redis: buffered, flushed, capped, secrets blanked, read back filtered."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from shared.recentlogs import KEPT_LINES, RecentLogs, read_recent_logs
from shared.streams import log_stream


async def test_lines_are_flushed_and_read_back_newest_first_filtered_by_level(
    redis: Redis,
) -> None:
    sink = RecentLogs(redis, "gateway")
    logger = logging.getLogger("test.recent")
    logger.addHandler(sink)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("first", extra={"job_id": "j1"})
        logger.warning("second with Bearer abc.def.ghi")
        logger.debug("third")
    finally:
        logger.removeHandler(sink)

    assert await sink.flush_once() == 3
    everything = await read_recent_logs(redis, ["gateway"])
    warnings = await read_recent_logs(redis, ["gateway"], min_level="WARNING")

    assert [line.message for line in everything] == [
        "third",
        "second with Bearer [redacted]",
        "first",
    ]
    assert everything[2].fields == {"job_id": "j1"}
    assert everything[2].service == "gateway"
    assert [line.level for line in warnings] == ["WARNING"]


async def test_services_merge_by_time_and_each_stream_stays_capped(redis: Redis) -> None:
    worker, notifier = RecentLogs(redis, "worker"), RecentLogs(redis, "notifier")
    for sink, name in ((worker, "w"), (notifier, "n")):
        record = logging.LogRecord(name, logging.INFO, __file__, 1, f"from {name}", None, None)
        sink.handle(record)
        await sink.flush_once()
    for i in range(KEPT_LINES + 300):
        worker.handle(logging.LogRecord("w", logging.INFO, __file__, 1, f"line {i}", None, None))
    await worker.flush_once()

    merged = await read_recent_logs(redis, ["worker", "notifier"], limit=KEPT_LINES * 3)

    assert merged[0].message == f"line {KEPT_LINES + 299}"
    assert "from n" in [line.message for line in merged]
    # Capped about KEPT_LINES: approximate trimming keeps whole macro nodes of up to 100 entries.
    assert KEPT_LINES <= await redis.xlen(log_stream("worker")) <= KEPT_LINES + 100
