"""`python -m health` as a process: it serves on HTTP_PORT, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from devstack.ports import LOOPBACK, free_port


def environment(**values: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **values}


def test_health_process_serves_and_exits_cleanly_on_sigterm(
    redis_url: str, database_url: str, closed_port_url: str
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "health"],
        env=environment(
            HTTP_HOST=LOOPBACK,
            HTTP_PORT=str(port),
            REDIS_URL=redis_url,
            DATABASE_URL=database_url,
            HEALTH_GATEWAY_URL=closed_port_url,
            HEALTH_NOTIFIER_URL=closed_port_url,
            HEALTH_PROBE_TIMEOUT_S="1",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://{LOOPBACK}:{port}", timeout=5) as client:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, "health exited before it served"
                try:
                    if client.get("/livez").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "health did not serve /livez in time"
                time.sleep(0.1)
            response = client.get("/health")
        assert response.status_code == 503
        checks = response.json()["checks"]
        # No service answers and no worker beats; Redis and PostgreSQL do.
        assert {name for name, entries in checks.items() if entries[0]["status"] == "fail"} == {
            "gateway",
            "notifier",
            "worker",
        }
        assert checks["redis"][0]["status"] == checks["postgres"][0]["status"] == "pass"
        process.send_signal(signal.SIGTERM)
        # A clean shutdown is a normal exit, not death by signal.
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        output = process.stdout.read().decode()
        process.stdout.close()
    assert '"service": "health"' in output
    assert "Application shutdown complete." in output


def test_health_process_refuses_an_invalid_setting_and_says_which() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "health"],
        env=environment(HTTP_PORT=str(free_port()), HEALTH_PROBE_TIMEOUT_S="0"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert "probe_timeout_s" in completed.stderr
