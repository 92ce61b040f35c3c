"""`python -m benchmarks.run` (`make bench`): every scenario of issue 10, one after another.

Each scenario runs against the same stack (see `benchmarks.stack`) and may fail on its own: its
error is recorded and the next one runs. The figures are written to
`benchmarks/results/<UTC date-time>.json` and `.md`, and the table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from benchmarks.config import BenchConfig, load_config
from benchmarks.context import BenchContext
from benchmarks.figures import Figure, Host, RunResult, ScenarioResult, raw_limit_of, with_ratios
from benchmarks.meters import MachineCpu, MachineMeter
from benchmarks.report import markdown, write_results
from benchmarks.scenarios import drain, enqueue, fanout, latency, memory, raw
from benchmarks.stack import BenchStack, running_stack
from shared.connections import redis_client
from shared.jobstore import JobStore
from shared.settings import RedisSettings, SettingsError

logger = logging.getLogger("benchmarks")

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class Scenario(msgspec.Struct, frozen=True):
    """A scenario's name (for `--only`), title, and the function that runs it."""

    name: str
    title: str
    run: Callable[[BenchContext], Awaitable[ScenarioResult]]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(raw.NAME, raw.TITLE, raw.run),
    Scenario(enqueue.NAME, enqueue.TITLE, enqueue.run),
    Scenario(drain.NAME, drain.TITLE, drain.run),
    Scenario(latency.NAME, latency.TITLE, latency.run),
    Scenario(fanout.NAME, fanout.TITLE, fanout.run),
    Scenario(memory.NAME, memory.TITLE, memory.run),
)


async def run_benchmarks(
    config: BenchConfig,
    *,
    only: Sequence[str] = (),
    database_url: str | None = None,
    keep_dir: bool = False,
    profile_dir: Path | None = None,
) -> RunResult:
    """Start the stack, run the chosen scenarios (all by default) in order, stop the stack.

    With `profile_dir`, the busiest service of each load is sampled with py-spy into it.
    """
    unknown = set(only) - {scenario.name for scenario in SCENARIOS}
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {_names()}")
    chosen = [scenario for scenario in SCENARIOS if not only or scenario.name in only]
    started_at = datetime.now(UTC)
    started = time.monotonic()
    load_1m = os.getloadavg()[0]
    logger.info("starting Redis, PostgreSQL and the services")
    async with running_stack(config, database_url=database_url, keep_dir=keep_dir) as stack:
        logger.info(
            "stack up in %.1f s; folder (logs, data): %s", time.monotonic() - started, stack.root
        )
        for name, error in stack.start_errors.items():
            logger.error("%s did not start: %s", name, error)
        redis = redis_client(RedisSettings(url=stack.redis.url))
        try:
            context = BenchContext(
                config=config,
                stack=stack,
                redis=redis,
                store=JobStore(redis),
                profile_dir=profile_dir,
            )
            results = [await _run_one(scenario, context) for scenario in chosen]
            server: dict[str, Any] = await redis.info("server")
        finally:
            await redis.aclose()
    limit = raw_limit_of(results)
    return RunResult(
        started_at=started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_s=time.monotonic() - started,
        host=Host(
            cpus=os.cpu_count() or 0,
            load_1m=load_1m,
            python=platform.python_version(),
            redis=str(server.get("redis_version", "unknown")),
            commit=_commit(),
        ),
        config=msgspec.structs.asdict(config),
        raw_limit=limit,
        scenarios=tuple(with_ratios(result, limit) for result in results),
    )


async def _run_one(scenario: Scenario, context: BenchContext) -> ScenarioResult:
    """Run one scenario; a failure becomes its result's error instead of ending the run."""
    logger.info("%s ...", scenario.title)
    started = time.monotonic()
    restarted = await asyncio.to_thread(context.stack.revive)
    machine = MachineMeter().start()
    try:
        async with asyncio.timeout(context.config.scenario_timeout_s):
            result = await scenario.run(context)
    except Exception as exc:
        logger.exception("%s failed", scenario.title)
        result = ScenarioResult(
            name=scenario.name,
            title=scenario.title,
            error=_failure(exc, context.stack),
        )
    result = msgspec.structs.replace(
        result, figures=(*result.figures, *_cpu_figures(scenario.name, machine.stop()))
    )
    if restarted:
        note = f"restarted {', '.join(restarted)} first: it had exited"
        result = msgspec.structs.replace(result, notes=(*result.notes, note))
    elapsed_s = time.monotonic() - started
    logger.info("%s done in %.1f s", scenario.title, elapsed_s)
    return msgspec.structs.replace(result, duration_s=elapsed_s)


def _cpu_figures(name: str, cpu: MachineCpu) -> tuple[Figure, ...]:
    """How busy the machine was over the scenario, and how much of that was not this run."""
    return (
        Figure(
            key=f"{name}.cpu.run",
            label="CPU of this run's processes, whole scenario",
            value=cpu.run_percent,
            unit="% core",
        ),
        Figure(
            key=f"{name}.cpu.other",
            label="CPU of other processes on the machine",
            value=cpu.other_percent,
            unit="% core",
        ),
    )


def _failure(exc: BaseException, stack: BenchStack) -> str:
    """The error, where it was raised, and the log tail of every service that is not running."""
    where = traceback.extract_tb(exc.__traceback__)[-3:]
    lines = [f"{type(exc).__name__}: {exc}", *traceback.format_list(where)]
    for name, process in stack.processes.items():
        if not process.is_running:
            lines.append(f"{name} exited ({process.returncode}); its log ends:")
            lines.append(process.log_tail(15))
    return "\n".join(line.rstrip() for line in lines)


def _commit() -> str:
    """The checked-out commit, marked `+changes` when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, fixed args
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if changes else head


def _names() -> str:
    return ",".join(scenario.name for scenario in SCENARIOS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        epilog="Sizes: BENCH_<FIELD> variables, fields of benchmarks.config.BenchConfig.",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="the smoke test's sizes (seconds, not minutes)"
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated scenarios to run, of {_names()}"
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON and table go"
    )
    parser.add_argument(
        "--keep-run-dir", action="store_true", help="keep the services' logs and data"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the busiest service of each load with py-spy (costs CPU: figures are "
        "not comparable with an unprofiled run)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; exit code 1 when a scenario failed (missed targets do not fail)."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s", stream=sys.stderr)
    # One line per request of the load would drown the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = load_config(tiny=arguments.tiny)
    except SettingsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    only = [name.strip() for name in arguments.only.split(",") if name.strip()]
    profile_dir = None
    if arguments.profile:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
        profile_dir = arguments.results_dir / f"{stamp}-profiles"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        run = runner.run(
            run_benchmarks(
                config, only=only, keep_dir=arguments.keep_run_dir, profile_dir=profile_dir
            )
        )
    json_path, markdown_path = write_results(run, arguments.results_dir)
    print(markdown(run))
    logger.info("written: %s and %s", json_path, markdown_path)
    return 1 if any(scenario.error is not None for scenario in run.scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
