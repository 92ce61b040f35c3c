"""The OpenAPI document lists each operation's problem+json answers, in the shape they have."""

from __future__ import annotations

from typing import Any

from devstack.tokens import TokenFactory
from tests.api import PROBLEM, Client, bearer


async def openapi(client: Client) -> dict[str, Any]:
    answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


async def test_job_creation_documents_its_problems_as_problem_json(client: Client) -> None:
    document = await openapi(client)
    responses = document["paths"]["/v1/jobs"]["post"]["responses"]

    assert {"400", "401", "403", "413", "422", "429", "500"} <= set(responses)
    for status in ("400", "422", "429"):
        assert set(responses[status]["content"]) == {PROBLEM}
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    # Members of a problem's own (`errors`, `retry_after_s`) stay allowed.
    assert problem.get("additionalProperties", True) is not False


async def test_only_what_an_operation_can_meet_is_documented(client: Client) -> None:
    paths = (await openapi(client))["paths"]

    read = set(paths["/v1/jobs/{job_id}"]["get"]["responses"])
    assert "404" in read
    assert not {"413", "429"} & read
    assert "/metrics" not in paths


async def test_a_documented_problem_answer_has_the_documented_shape(
    client: Client, make_token: TokenFactory
) -> None:
    answer = await client.get("/v1/jobs/nope", headers=bearer(make_token("alice")))

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert {"type", "title", "status", "detail"} <= set(answer.json())


async def test_state_conflicts_are_documented_where_they_can_happen(client: Client) -> None:
    paths = (await openapi(client))["paths"]

    conflicts = {
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "409" in operation.get("responses", {})
    }

    assert conflicts == {
        "POST /v1/jobs/{job_id}/cancel",
        "POST /v1/jobs/{job_id}/retry",
        "DELETE /v1/jobs/{job_id}",
        "POST /v1/queues/{name}/dead-letters/{letter}/replay",
    }
