"""`make bench` at tiny sizes: every scenario runs end to end, so the harness cannot rot.

Performance goals live in the benchmark, never here: this asserts that each scenario measured
what it should and that nothing was lost, not how fast it went.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from benchmarks.config import tiny_config
from benchmarks.report import write_results
from benchmarks.run import SCENARIOS, run_benchmarks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_every_scenario_reports_its_figures_at_tiny_size(
    database_url: str, tmp_path: Path
) -> None:
    run = await run_benchmarks(tiny_config(), database_url=database_url)

    assert {scenario.name: scenario.error for scenario in run.scenarios if scenario.error} == {}
    assert [scenario.name for scenario in run.scenarios] == [s.name for s in SCENARIOS]
    figures = {figure.key: figure for scenario in run.scenarios for figure in scenario.figures}
    assert run.raw_limit is not None
    assert run.raw_limit.rate_per_s > 0
    assert figures["raw.consume"].ratio == pytest.approx(1.0)
    for key in ("enqueue.single", "enqueue.batch", "enqueue.http", "drain.one", "drain.two"):
        assert figures[key].value > 0, key
        assert figures[key].ratio is not None, key
    assert figures["enqueue.http.errors"].value == 0
    assert not math.isnan(figures["latency.completed.p99"].value)
    assert figures["latency.late"].value == 0
    assert figures["latency.ws_missing"].value == 0
    assert figures["fanout.connections"].value == 12
    assert figures["fanout.room.delivered"].value == 1.0
    assert figures["fanout.broadcast.delivered"].value == 1.0
    assert figures["memory.redis.per_job"].value > 0
    assert figures["memory.notifier.per_connection"].value >= 0

    json_path, markdown_path = write_results(run, tmp_path)
    assert msgspec.json.decode(json_path.read_bytes())["raw_limit"]["rate_per_s"] > 0
    table = markdown_path.read_text(encoding="utf-8")
    for scenario in SCENARIOS:
        assert scenario.title in table
