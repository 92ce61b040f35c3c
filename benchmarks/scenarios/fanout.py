"""5. Fan-out: many WebSocket clients on one notifier, room messages, then broadcasts to all.

Clients are `users` x `connections_per_user` connections of role USER in separate processes
(`benchmarks.wsclients`); each user's room holds that user's connections. The events are
written straight onto the fan-out queue's events stream, as the job store writes them, so the
notifier alone is measured: a room message goes to `user:<id>`, a broadcast to `role:USER`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec

from benchmarks.clientprocs import ClientProcesses, client_processes
from benchmarks.context import BenchContext
from benchmarks.figures import Figure, ScenarioResult, Target, at_least, at_most, latency_figures
from benchmarks.meters import MIB, CpuMeter, rss_bytes
from benchmarks.openloop import open_loop
from benchmarks.profiling import profiled
from benchmarks.stack import FANOUT_QUEUE, NOTIFIER
from benchmarks.wsclients import PhaseTally, mark
from shared.clock import now_ms
from shared.contracts.codec import encoder
from shared.contracts.events import JobProgressed
from shared.streams import DATA_FIELD, QueueKeys, role_room, user_room

NAME = "fanout"
TITLE = "5. WebSocket fan-out"

_ROOM = "room"
_BROADCAST = "broadcast"


class PhaseLoad(msgspec.Struct, frozen=True, kw_only=True):
    """What one phase sent, and the CPU it cost the notifier and the clients."""

    sent: int
    # Deliveries due: each message times the clients in its rooms.
    expected: float
    elapsed_s: float
    # From the end of the load until the deliveries stopped coming.
    settled_s: float
    notifier_cpu: float
    clients_cpu: float
    lag_max_ms: float
    profile: tuple[str, ...] = ()


async def run(ctx: BenchContext) -> ScenarioResult:
    """Connect every client, run the room phase, then the broadcast phase."""
    config, stack = ctx.config, ctx.stack
    users, per_user = config.fanout_users, config.fanout_connections_per_user
    notifier_pid = stack.pid(NOTIFIER)
    ws_url = stack.ws_url(NOTIFIER)
    subs = [f"fan-{user}" for user in range(users) for _ in range(per_user)]
    notes: list[str] = []
    async with client_processes(
        ws_url,
        stack.jwt_secret,
        subs,
        processes=config.fanout_client_processes,
        log_dir=stack.root / "logs",
    ) as clients:
        ready = await clients.start(config.wait_timeout_s)
        if ready.connected < len(subs):
            notes.append(
                f"reduced scale: {ready.connected} of {len(subs)} clients connected "
                f"({'; '.join(ready.errors)})"
            )
        rss_connected_mib = rss_bytes(notifier_pid) / MIB
        room = await _phase(
            ctx,
            _ROOM,
            rate_per_s=config.fanout_room_rate_per_s,
            duration_s=config.fanout_room_duration_s,
            rooms_of=lambda index: (user_room(f"fan-{index % users}"),),
            # Exact when every client connected; an average over the rooms otherwise.
            members=ready.connected / users,
            clients=clients,
            notifier_pid=notifier_pid,
        )
        broadcast = await _phase(
            ctx,
            _BROADCAST,
            rate_per_s=config.fanout_broadcast_rate_per_s,
            duration_s=config.fanout_broadcast_duration_s,
            rooms_of=lambda _index: (role_room("USER"),),
            members=ready.connected,
            clients=clients,
            notifier_pid=notifier_pid,
        )
        rss_mib = rss_bytes(notifier_pid) / MIB
        report = await clients.stop(config.wait_timeout_s)
    connected = ready.connected
    figures = [
        Figure(
            key="fanout.connections",
            label="clients connected",
            value=connected,
            unit="connections",
            target=at_least(len(subs)),
        ),
        Figure(
            key="fanout.connect_s", label="time to connect all", value=ready.connect_s, unit="s"
        ),
        *_phase_figures(
            _ROOM,
            f"room message ({per_user} clients)",
            room,
            report.phases.get(_ROOM, PhaseTally()),
            p99=at_most(5),
            cpu=at_most(25),
        ),
        *_phase_figures(
            _BROADCAST,
            f"broadcast ({connected} clients)",
            broadcast,
            report.phases.get(_BROADCAST, PhaseTally()),
            p99=at_most(60),
            cpu=at_most(40),
        ),
        Figure(
            key="fanout.rss_connected",
            label=f"notifier RSS with {connected} clients, before the load",
            value=rss_connected_mib,
            unit="MiB",
        ),
        Figure(
            key="fanout.rss",
            label="notifier RSS after the load",
            value=rss_mib,
            unit="MiB",
            target=at_most(100),
        ),
        Figure(
            key="fanout.dropped",
            label="clients dropped",
            value=report.closed_early,
            unit="connections",
            target=at_most(0),
        ),
    ]
    notes.append(
        f"{users} rooms of {per_user}: {config.fanout_room_rate_per_s:g} room messages/s for "
        f"{config.fanout_room_duration_s:g} s, then {config.fanout_broadcast_rate_per_s:g} "
        f"broadcasts/s for {config.fanout_broadcast_duration_s:g} s; clients in "
        f"{config.fanout_client_processes} processes on the same cores; latency from the XADD "
        "of the event to its receipt by the client"
    )
    notes += [*room.profile, *broadcast.profile]
    return ScenarioResult(name=NAME, title=TITLE, figures=tuple(figures), notes=tuple(notes))


async def _phase(
    ctx: BenchContext,
    phase: str,
    *,
    rate_per_s: float,
    duration_s: float,
    rooms_of: Callable[[int], tuple[str, ...]],
    members: float,
    clients: ClientProcesses,
    notifier_pid: int,
) -> PhaseLoad:
    """Write `rate_per_s` marked events a second for `duration_s`, each for `members` clients,
    then wait for the deliveries until all arrived or none came for `settle_s`."""
    stream = QueueKeys(FANOUT_QUEUE).events
    maxlen = ctx.store.settings.events_maxlen

    async def publish(index: int) -> None:
        event = JobProgressed(
            job_id=f"{phase}-{index}",
            type="bench.fanout",
            queue=FANOUT_QUEUE,
            owner="bench-fanout",
            rooms=rooms_of(index),
            at_ms=now_ms(),
            attempt=1,
            progress=0.0,
            message=mark(phase, time.time_ns()),
        )
        await ctx.redis.xadd(
            stream, {DATA_FIELD: encoder.encode(event)}, maxlen=maxlen, approximate=True
        )

    async with profiled(f"fanout-{phase}-notifier", notifier_pid, ctx.profile_dir) as profile:
        notifier_cpu = CpuMeter([notifier_pid]).start()
        clients_cpu = CpuMeter(clients.pids).start()
        started = time.monotonic()
        load = await open_loop(rate_per_s, duration_s, publish)
        elapsed_s = time.monotonic() - started
        notifier_percent, clients_percent = notifier_cpu.stop(), clients_cpu.stop()
    expected = load.sent * members
    settled_s = await _await_deliveries(ctx, clients, phase, expected)
    return PhaseLoad(
        sent=load.sent,
        expected=expected,
        elapsed_s=elapsed_s,
        settled_s=settled_s,
        notifier_cpu=notifier_percent,
        clients_cpu=clients_percent,
        lag_max_ms=load.lag_max_ms,
        profile=tuple(profile.summaries()),
    )


async def _await_deliveries(
    ctx: BenchContext, clients: ClientProcesses, phase: str, expected: float
) -> float:
    """Wait until `expected` deliveries of `phase` arrived, or none for `settle_s`, or the wait
    timeout; how long it took. Late deliveries count, with their latency; lost ones do not."""
    config = ctx.config
    started = time.monotonic()
    previous = -1
    while time.monotonic() - started < config.wait_timeout_s:
        received = (await clients.received(config.wait_timeout_s)).get(phase, 0)
        if received >= expected or received == previous:
            break
        previous = received
        await asyncio.sleep(config.settle_s)
    return time.monotonic() - started


def _phase_figures(
    phase: str,
    label: str,
    load: PhaseLoad,
    tally: PhaseTally,
    *,
    p99: Target,
    cpu: Target,
) -> list[Figure]:
    latencies_ms = [us / 1000 for us in tally.latencies_us]
    key = f"fanout.{phase}"
    return [
        Figure(
            key=f"{key}.delivered",
            label=f"{label}: delivered ratio",
            value=tally.received / load.expected if load.expected else 0.0,
            unit="ratio",
            target=at_least(1.0),
        ),
        Figure(
            key=f"{key}.deliveries",
            label=f"{label}: deliveries",
            value=tally.received / load.elapsed_s,
            unit="msgs/s",
            kind="rate",
        ),
        *latency_figures(key, label, latencies_ms, p99_target=p99),
        Figure(
            key=f"{key}.cpu",
            label=f"{label}: notifier CPU",
            value=load.notifier_cpu,
            unit="% core",
            target=cpu,
        ),
        Figure(
            key=f"{key}.clients_cpu",
            label=f"{label}: client processes CPU",
            value=load.clients_cpu,
            unit="% core",
        ),
        Figure(
            key=f"{key}.settled",
            label=f"{label}: deliveries still arriving after the load",
            value=load.settled_s,
            unit="s",
        ),
        Figure(
            key=f"{key}.lag",
            label=f"{label}: publisher behind schedule, max",
            value=load.lag_max_ms,
            unit="ms",
        ),
    ]
