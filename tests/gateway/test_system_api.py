"""`GET /v1/system/logs`: the gateway's own lines reach Redis and come back to admins only."""

from __future__ import annotations

import asyncio
import logging

from devstack.tokens import TokenFactory
from tests.api import PROBLEM, Client, bearer


async def test_admins_read_the_gateways_recent_log_lines(
    client: Client, make_token: TokenFactory
) -> None:
    admin = bearer(make_token("root", "ADMIN"))
    logging.getLogger("gateway.test").warning("something to see", extra={"job_id": "j-42"})

    for _ in range(50):
        lines = (await client.get("/v1/system/logs?source=gateway", headers=admin)).json()
        if any(line["message"] == "something to see" for line in lines):
            break
        await asyncio.sleep(0.1)

    [line] = [line for line in lines if line["message"] == "something to see"]
    assert (line["service"], line["level"], line["fields"]) == (
        "gateway",
        "WARNING",
        {"job_id": "j-42"},
    )
    errors_only = (await client.get("/v1/system/logs?level=ERROR", headers=admin)).json()
    assert all(line["level"] in ("ERROR", "CRITICAL") for line in errors_only)


async def test_users_may_not_read_logs_and_bad_filters_are_problems(
    client: Client, make_token: TokenFactory
) -> None:
    admin = bearer(make_token("root", "ADMIN"))

    user = await client.get("/v1/system/logs", headers=bearer(make_token("alice")))
    source = await client.get("/v1/system/logs?source=nope", headers=admin)
    limit = await client.get("/v1/system/logs?limit=0", headers=admin)

    assert [a.status_code for a in (user, source, limit)] == [403, 400, 400]
    assert {a.headers["content-type"] for a in (user, source, limit)} == {PROBLEM}
