"""One job from REST to WebSocket, through the four services running as separate processes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from devstack.stack import Stack

pytestmark = pytest.mark.slow

EVENT_TIMEOUT_S = 15.0


async def receive_json(socket: websockets.ClientConnection) -> dict[str, Any]:
    frame = await asyncio.wait_for(socket.recv(), EVENT_TIMEOUT_S)
    message: dict[str, Any] = json.loads(frame)
    return message


async def job_events(socket: websockets.ClientConnection, job_id: str, last: str) -> list[str]:
    """The kinds of this job's events, in arrival order, up to and including `last`."""
    kinds: list[str] = []
    while last not in kinds:
        message = await receive_json(socket)
        if message["type"] == "event" and message["event"]["job_id"] == job_id:
            kinds.append(message["event"]["event"])
    return kinds


async def wait_for_state(
    client: httpx.AsyncClient, job_id: str, state: str, token: str
) -> dict[str, Any]:
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        answer = await client.get(
            f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}
        )
        body: dict[str, Any] = answer.json()
        if body.get("state") == state or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_a_job_posted_over_rest_is_pushed_to_its_owner_over_websocket(stack: Stack) -> None:
    alice = stack.token("alice")
    async with (
        websockets.connect(f"{stack.notifier_ws_url}?token={alice}") as socket,
        httpx.AsyncClient(base_url=stack.gateway_url) as client,
    ):
        welcome = await receive_json(socket)
        assert welcome["type"] == "welcome"
        assert "user:alice" in welcome["rooms"]

        answer = await client.post(
            "/v1/jobs",
            json={"type": "demo.echo", "payload": {"text": "hi"}},
            headers={"Authorization": f"Bearer {alice}"},
        )
        assert answer.status_code == 202
        job_id = answer.json()["id"]
        assert answer.headers["location"] == f"/v1/jobs/{job_id}"

        kinds = await job_events(socket, job_id, last="job.completed")
        assert kinds == ["job.queued", "job.started", "job.completed"]

        job = await wait_for_state(client, job_id, "completed", alice)
        assert job["state"] == "completed"
        assert job["result"] == {"text": "hi"}


async def test_another_users_socket_receives_nothing_of_alices_job(stack: Stack) -> None:
    alice, bob = stack.token("alice"), stack.token("bob")
    async with (
        websockets.connect(f"{stack.notifier_ws_url}?token={alice}") as alices,
        websockets.connect(f"{stack.notifier_ws_url}?token={bob}") as bobs,
        httpx.AsyncClient(base_url=stack.gateway_url) as client,
    ):
        await receive_json(alices)
        await receive_json(bobs)
        answer = await client.post(
            "/v1/jobs",
            json={"type": "demo.echo", "payload": {"text": "private"}},
            headers={"Authorization": f"Bearer {alice}"},
        )
        job_id = answer.json()["id"]
        await job_events(alices, job_id, last="job.completed")

        # Alice has seen the whole job; anything for Bob would have arrived by now.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bobs.recv(), 0.5)


async def test_a_failing_job_is_retried_and_its_owner_sees_why(stack: Stack) -> None:
    alice = stack.token("alice")
    async with (
        websockets.connect(f"{stack.notifier_ws_url}?token={alice}") as socket,
        httpx.AsyncClient(base_url=stack.gateway_url) as client,
    ):
        await receive_json(socket)
        answer = await client.post(
            "/v1/jobs",
            json={"type": "demo.fail", "payload": {"times": 1, "message": "flaky"}},
            headers={"Authorization": f"Bearer {alice}"},
        )
        job_id = answer.json()["id"]

        kinds = await job_events(socket, job_id, last="job.completed")

        assert kinds == [
            "job.queued",
            "job.started",
            "job.retrying",
            "job.started",
            "job.completed",
        ]
        job = await wait_for_state(client, job_id, "completed", alice)
        assert job["attempt"] == 2
        assert "flaky" in job["errors"][0]["message"]
        assert job["errors"][0]["detail"] == ""


async def test_a_socket_without_a_valid_token_is_closed_with_4401(stack: Stack) -> None:
    async with websockets.connect(f"{stack.notifier_ws_url}?token=nonsense") as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), EVENT_TIMEOUT_S)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_health_is_200_when_all_is_up_and_503_while_redis_is_down(stack: Stack) -> None:
    assert stack.redis is not None
    async with httpx.AsyncClient(base_url=stack.health_url, timeout=10) as client:
        up = await client.get("/health")
        assert up.status_code == 200, up.text
        assert set(up.json()["checks"]) >= {"redis", "postgres", "gateway", "notifier", "worker"}

        stack.redis.stop()
        try:
            down = await client.get("/health")
            assert down.status_code == 503
            [redis_check] = down.json()["checks"]["redis"]
            assert redis_check["status"] == "fail"
        finally:
            stack.redis.start()

        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while (again := await client.get("/health")).status_code != 200:
            assert time.monotonic() < deadline, again.text
            await asyncio.sleep(0.2)


async def test_jobs_in_flight_across_a_redis_restart_complete_and_new_ones_are_accepted(
    stack: Stack,
) -> None:
    """AOF is on: a restart loses no accepted job, and every service resumes by itself."""
    assert stack.redis is not None
    alice = stack.token("alice")
    headers = {"Authorization": f"Bearer {alice}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
        running = await client.post(
            "/v1/jobs",
            json={"type": "demo.sleep", "payload": {"seconds": 1.0, "steps": 2}},
            headers=headers,
        )
        waiting = await client.post(
            "/v1/jobs", json={"type": "demo.fail", "payload": {"times": 1}}, headers=headers
        )
        await wait_for_state(client, running.json()["id"], "active", alice)

        stack.redis.stop()
        stack.redis.start()

        after = await client.post(
            "/v1/jobs", json={"type": "demo.echo", "payload": {"text": "after"}}, headers=headers
        )
        assert after.status_code == 202, after.text
        for answer in (running, waiting, after):
            job = await wait_for_state(client, answer.json()["id"], "completed", alice)
            assert job["state"] == "completed", job
