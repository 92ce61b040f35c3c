"""What the console's browser tests do again and again: sign in, wait for the socket, call REST."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from devstack.stack import Stack
from tests.api import bearer

# Long enough for a job to run and its notification to be stored on a loaded machine.
UI_TIMEOUT_MS = 15_000


async def dev_sign_in(page: Page, sub: str, role: str = "USER") -> None:
    """Open the console and sign in as `sub` through the dev sign-in form; wait until live."""
    await page.goto("/console/")
    await page.get_by_label("User", exact=True).fill(sub)
    await page.get_by_label("Role").select_option(role)
    await (
        page.get_by_role("form", name="Sign in as another dev user")
        .get_by_role("button", name="Sign in")
        .click()
    )
    await expect_live(page)


async def expect_live(page: Page) -> None:
    """The connection state shows the notifier's socket open."""
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=UI_TIMEOUT_MS
    )


async def shoot(page: Page, folder: Path, name: str, *, full_page: bool = True) -> Path:
    """A screenshot of the page (or of the window only), kept as an artifact."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def submit(stack: Stack, sub: str, job: dict[str, Any]) -> str:
    """POST a job as `sub`; its id."""
    async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
        answer = await client.post("/v1/jobs", json=job, headers=bearer(stack.token(sub)))
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


async def job_state(stack: Stack, job_id: str, state: str, timeout_s: float = 15.0) -> str:
    """Poll the job as an admin until it is in `state` (or time runs out); its last state."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
        while True:
            answer = await client.get(
                f"/v1/jobs/{job_id}", headers=bearer(stack.token("console-test", "ADMIN"))
            )
            current: str = answer.json()["state"]
            if current == state or time.monotonic() > deadline:
                return current
            await asyncio.sleep(0.1)


async def expect_text(page: Page, selector: str, text: str) -> None:
    """The element at `selector` shows `text` within the UI timeout."""
    await expect(page.locator(selector)).to_have_text(text, timeout=UI_TIMEOUT_MS)
