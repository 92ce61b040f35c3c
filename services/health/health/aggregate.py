"""The health document as a pure function of probe results (draft-inadarei-api-health-check)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import msgspec

Status = Literal["pass", "warn", "fail"]
ComponentType = Literal["datastore", "component"]

MEDIA_TYPE = "application/health+json"


class WorkerDetails(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A worker's heartbeat as the document shows it, next to its id and the heartbeat's age."""

    host: str
    pid: int
    version: str
    queues: tuple[str, ...]
    concurrency: int
    in_hand: int
    running: int
    started_at: datetime
    last_job_started_at: datetime | None = None
    last_job_finished_at: datetime | None = None
    stopping: bool = False


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One entry a probe reports itself: an instance of its component (one worker), or a figure
    it judged (one queue's lag). Without `observed_value`, the entry shows the probe's latency."""

    ok: bool
    component_id: str | None = None
    observed_value: float | None = None
    observed_unit: str = "ms"
    output: str | None = None
    time: datetime | None = None
    worker: WorkerDetails | None = None


class ProbeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one probe observed: success or the error, how long it took, and when it ran.

    A probe that ran may report `findings`, one entry each; otherwise the result is one entry.
    """

    name: str
    component_type: ComponentType
    critical: bool
    ok: bool
    latency_ms: float
    observed_at: datetime
    error: str | None = None
    findings: tuple[Finding, ...] = ()


class CheckReport(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One entry of a check's array in the document; `output` only when the check failed."""

    status: Status
    component_type: ComponentType
    observed_value: float
    observed_unit: str
    time: datetime
    component_id: str | None = None
    output: str | None = None
    worker: WorkerDetails | None = None


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    """The whole answer of `GET /health`."""

    status: Status
    version: str
    uptime_s: float
    checks: dict[str, list[CheckReport]]


def entry_status(*, ok: bool, critical: bool) -> Status:
    """A failed critical check fails; a failed optional one only warns."""
    if ok:
        return "pass"
    return "fail" if critical else "warn"


def check_status(result: ProbeResult) -> Status:
    """The status of a probe's own entry: whether it answered, weighed by its criticality."""
    return entry_status(ok=result.ok, critical=result.critical)


def check_reports(result: ProbeResult) -> list[CheckReport]:
    """The entries of one result: one per finding, or one for the probe itself."""
    if not result.ok or not result.findings:
        return [
            CheckReport(
                status=check_status(result),
                component_type=result.component_type,
                observed_value=round(result.latency_ms, 3),
                observed_unit="ms",
                time=result.observed_at,
                output=None if result.ok else (result.error or "failed"),
            )
        ]
    return [
        CheckReport(
            status=entry_status(ok=finding.ok, critical=result.critical),
            component_type=result.component_type,
            component_id=finding.component_id,
            observed_value=round(
                result.latency_ms if finding.observed_value is None else finding.observed_value, 3
            ),
            observed_unit="ms" if finding.observed_value is None else finding.observed_unit,
            time=finding.time or result.observed_at,
            output=None if finding.ok else (finding.output or "failed"),
            worker=finding.worker,
        )
        for finding in result.findings
    ]


def worst(statuses: Iterable[Status]) -> Status:
    """Fail over warn over pass; nothing at all is a pass."""
    seen = set(statuses)
    if "fail" in seen:
        return "fail"
    if "warn" in seen:
        return "warn"
    return "pass"


def overall_status(results: Iterable[ProbeResult]) -> Status:
    """The worst status of all entries of all checks; no checks at all is a pass."""
    return worst(report.status for result in results for report in check_reports(result))


def http_status_code(status: Status) -> int:
    """200 while the system can serve (pass or warn), 503 when a critical check fails."""
    return 503 if status == "fail" else 200


def build_report(results: Iterable[ProbeResult], *, version: str, uptime_s: float) -> HealthReport:
    """Assemble the document; checks keep the order of `results`."""
    # An array per name: several probes of one component (say, two Redis nodes), or one probe's
    # findings (every worker), share a key.
    checks: dict[str, list[CheckReport]] = {}
    for result in results:
        checks.setdefault(result.name, []).extend(check_reports(result))
    return HealthReport(
        status=worst(report.status for reports in checks.values() for report in reports),
        version=version,
        uptime_s=round(uptime_s, 3),
        checks=checks,
    )
