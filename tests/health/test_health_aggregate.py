"""The health document as a pure function of probe results."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from health.aggregate import ProbeResult, build_report, http_status_code, overall_status

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@st.composite
def probe_results(draw: st.DrawFn, *, ok: bool | None = None) -> ProbeResult:
    succeeded = draw(st.booleans()) if ok is None else ok
    return ProbeResult(
        name=draw(st.sampled_from(["redis", "postgres", "gateway", "notifier", "worker"])),
        component_type=draw(st.sampled_from(["datastore", "component"])),
        critical=draw(st.booleans()),
        ok=succeeded,
        latency_ms=draw(st.floats(min_value=0, max_value=60_000)),
        observed_at=draw(st.datetimes(timezones=st.just(UTC))),
        error=None if succeeded else draw(st.text(min_size=1, max_size=40)),
    )


def result(name: str, *, ok: bool = True, critical: bool = True) -> ProbeResult:
    return ProbeResult(
        name=name,
        component_type="datastore",
        critical=critical,
        ok=ok,
        latency_ms=1.23456,
        observed_at=NOW,
        error=None if ok else "ConnectionError: refused",
    )


@given(st.lists(probe_results(), max_size=10))
def test_any_failing_critical_check_fails_with_503(results: list[ProbeResult]) -> None:
    report = build_report(results, version="1", uptime_s=1.0)
    critical_failure = any(r.critical and not r.ok for r in results)
    assert (report.status == "fail") == critical_failure
    assert (http_status_code(report.status) == 503) == critical_failure


@given(st.lists(probe_results(ok=True), max_size=10))
def test_all_checks_passing_is_pass_with_200(results: list[ProbeResult]) -> None:
    report = build_report(results, version="1", uptime_s=1.0)
    assert report.status == "pass"
    assert http_status_code(report.status) == 200


@given(st.lists(probe_results(), min_size=1, max_size=10))
def test_failing_optional_checks_alone_warn_with_200(results: list[ProbeResult]) -> None:
    optional = [ProbeResult(**{**msgspec.structs.asdict(r), "critical": False}) for r in results]
    status = overall_status(optional)
    assert status == ("pass" if all(r.ok for r in results) else "warn")
    assert http_status_code(status) == 200


@given(st.lists(probe_results(), max_size=10))
def test_every_result_is_reported_under_its_name_with_output_only_on_failure(
    results: list[ProbeResult],
) -> None:
    report = build_report(results, version="1", uptime_s=1.0)
    assert sum(len(entries) for entries in report.checks.values()) == len(results)
    for name, entries in report.checks.items():
        mine = [r for r in results if r.name == name]
        assert [e.status == "pass" for e in entries] == [r.ok for r in mine]
        assert [e.output is not None for e in entries] == [not r.ok for r in mine]


def test_document_has_the_draft_health_check_shape() -> None:
    report = build_report(
        [result("redis"), result("postgres", ok=False)], version="0.1.0", uptime_s=12.3456
    )
    document = msgspec.json.decode(msgspec.json.encode(report))
    assert document == {
        "status": "fail",
        "version": "0.1.0",
        "uptime_s": 12.346,
        "checks": {
            "redis": [
                {
                    "status": "pass",
                    "componentType": "datastore",
                    "observedValue": 1.235,
                    "observedUnit": "ms",
                    "time": "2026-01-02T03:04:05Z",
                }
            ],
            "postgres": [
                {
                    "status": "fail",
                    "componentType": "datastore",
                    "observedValue": 1.235,
                    "observedUnit": "ms",
                    "time": "2026-01-02T03:04:05Z",
                    "output": "ConnectionError: refused",
                }
            ],
        },
    }


def test_no_checks_at_all_is_a_pass() -> None:
    assert overall_status([]) == "pass"
