"""Waiting, bounded, for a job to reach a state: what tests of real worker processes do."""

from __future__ import annotations

import asyncio
import time

from shared.contracts.jobs import JobView
from shared.jobstore import JobStore

WAIT_S = 20.0


async def wait_for(
    store: JobStore, job_id: str, state: str, *, queue: str = "default", timeout_s: float = WAIT_S
) -> JobView:
    """The job once it is in `state`; fails the test after `timeout_s` with the state it is in."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = await store.get([queue], job_id)
        assert view is not None, f"no job {job_id}"
        if view.state == state:
            return view
        assert time.monotonic() < deadline, f"still {view.state}, expected {state}"
        await asyncio.sleep(0.05)
