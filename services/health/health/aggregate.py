"""The health document as a pure function of probe results (draft-inadarei-api-health-check)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import msgspec

Status = Literal["pass", "warn", "fail"]
ComponentType = Literal["datastore", "component"]

MEDIA_TYPE = "application/health+json"


class ProbeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one probe observed: success or the error, how long it took, and when it ran."""

    name: str
    component_type: ComponentType
    critical: bool
    ok: bool
    latency_ms: float
    observed_at: datetime
    error: str | None = None


class CheckReport(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One entry of a check's array in the document; `output` only when the check failed."""

    status: Status
    component_type: ComponentType
    observed_value: float
    observed_unit: Literal["ms"]
    time: datetime
    output: str | None = None


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    """The whole answer of `GET /health`."""

    status: Status
    version: str
    uptime_s: float
    checks: dict[str, list[CheckReport]]


def check_status(result: ProbeResult) -> Status:
    """A failed critical check fails; a failed optional one only warns."""
    if result.ok:
        return "pass"
    return "fail" if result.critical else "warn"


def overall_status(results: Iterable[ProbeResult]) -> Status:
    """The worst status of all checks (fail over warn over pass); no checks at all is a pass."""
    statuses = {check_status(result) for result in results}
    if "fail" in statuses:
        return "fail"
    if "warn" in statuses:
        return "warn"
    return "pass"


def http_status_code(status: Status) -> int:
    """200 while the system can serve (pass or warn), 503 when a critical check fails."""
    return 503 if status == "fail" else 200


def build_report(results: Iterable[ProbeResult], *, version: str, uptime_s: float) -> HealthReport:
    """Assemble the document; checks keep the order of `results`."""
    results = list(results)
    # An array per name: several probes of one component (say, two Redis nodes) share a key.
    checks: dict[str, list[CheckReport]] = {}
    for result in results:
        checks.setdefault(result.name, []).append(
            CheckReport(
                status=check_status(result),
                component_type=result.component_type,
                observed_value=round(result.latency_ms, 3),
                observed_unit="ms",
                time=result.observed_at,
                output=None if result.ok else (result.error or "failed"),
            )
        )
    return HealthReport(
        status=overall_status(results),
        version=version,
        uptime_s=round(uptime_s, 3),
        checks=checks,
    )
