"""The `stack` fixture: the four services as processes, live, restartable."""

from __future__ import annotations

import httpx
import pytest

from devstack.stack import Stack

pytestmark = pytest.mark.slow


def test_stack_serves_livez_on_every_service(stack: Stack) -> None:
    for url in (stack.gateway_url, stack.notifier_url, stack.health_url, stack.worker_url):
        response = httpx.get(f"{url}/livez", timeout=5.0)
        assert response.status_code == 200, url
    assert stack.notifier_ws_url.startswith("ws://127.0.0.1:")
    assert stack.notifier_ws_url.endswith("/ws")


def test_stack_service_comes_back_after_kill_9(stack: Stack) -> None:
    worker = stack.services["worker"]
    worker.kill()
    assert not worker.is_running
    assert worker.returncode == -9

    worker.restart()

    assert httpx.get(f"{stack.worker_url}/livez", timeout=5.0).status_code == 200
