"""The probe runner: timeouts, error capture and concurrency, with plain coroutines as probes."""

from __future__ import annotations

import asyncio
import time

from health.probes import Check, Probe, ProbeFailedError, run_check, run_checks


def check(name: str, probe: Probe) -> Check:
    return Check(name=name, component_type="component", probe=probe)


async def hangs() -> None:
    await asyncio.Event().wait()


async def answers() -> None:
    return None


async def refuses() -> None:
    raise ProbeFailedError("GET http://x/livez answered HTTP 500")


async def test_hung_probe_fails_when_its_timeout_expires() -> None:
    started = time.perf_counter()
    result = await run_check(check("gateway", hangs), timeout_s=0.2)
    assert time.perf_counter() - started < 1.0
    assert not result.ok
    assert result.error == "no answer within 0.2 s"
    assert result.latency_ms >= 200


async def test_probe_error_becomes_a_failed_result_with_type_and_message() -> None:
    result = await run_check(check("gateway", refuses), timeout_s=1)
    assert not result.ok
    assert result.error == "ProbeFailedError: GET http://x/livez answered HTTP 500"


async def test_answering_probe_passes_with_its_latency() -> None:
    result = await run_check(check("gateway", answers), timeout_s=1)
    assert result.ok
    assert result.error is None
    assert 0 <= result.latency_ms < 1000


async def test_checks_run_concurrently_so_hung_ones_cost_one_timeout_together() -> None:
    started = time.perf_counter()
    results = await run_checks(
        [check("a", hangs), check("b", hangs), check("c", answers), check("d", hangs)],
        timeout_s=0.3,
    )
    assert time.perf_counter() - started < 0.9
    assert [(r.name, r.ok) for r in results] == [
        ("a", False),
        ("b", False),
        ("c", True),
        ("d", False),
    ]
