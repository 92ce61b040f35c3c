"""The admin pages in a browser: a dead job retried, dead letters, queues, system, settings."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from devstack.stack import Stack
from tests.api import bearer
from tests.console.browsing import (
    UI_TIMEOUT_MS,
    dev_sign_in,
    expect_live,
    job_state,
    shoot,
    submit,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def admin_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway's REST API as an admin, to set up and to check what the pages did."""
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=bearer(stack.token("console-admin", "ADMIN"))
    ) as client:
        yield client


async def test_an_admin_retries_a_dead_job_and_sees_it_complete(
    stack: Stack, page: Page, shots: Path
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    job_id = await submit(
        stack, owner, {"type": "demo.fail", "payload": {"times": 1}, "max_attempts": 1}
    )
    assert await job_state(stack, job_id, "dead") == "dead"

    await dev_sign_in(page, "ops", "ADMIN")
    await page.goto(f"/console/#/jobs?owner={owner}")
    row = page.locator(f"tr[data-job-id='{job_id}']")
    await expect(row.locator(".state")).to_have_text("dead", timeout=UI_TIMEOUT_MS)
    await shoot(page, shots, "1-jobs-list")

    await row.get_by_role("link").click()
    await expect(page.get_by_role("heading", name="Errors (1)")).to_be_visible()
    # What the job was asked to do, kept after it died.
    await expect(page.locator("pre.json").first).to_contain_text('"times": 1')
    await page.get_by_text("Traceback").first.click()
    await expect(page.locator(".errors pre").first).to_contain_text("DemoFailureError")
    await shoot(page, shots, "2-dead-job-detail")

    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator("#job-status")).to_contain_text("Retried")
    # A retry is a fresh round of attempts, numbered on: demo.fail fails only its first, so the
    # page follows the job's events through attempt 2 to completed.
    await expect(page.locator(".facts .badge")).to_have_text("completed", timeout=UI_TIMEOUT_MS)
    await expect(page.get_by_role("heading", name="Errors (1)")).to_be_visible()
    await shoot(page, shots, "3-after-retry")

    # Another dead job, for the dead-letters page: its letter, and the replay of the first.
    other = await submit(
        stack, owner, {"type": "demo.fail", "payload": {"times": 1}, "max_attempts": 1}
    )
    assert await job_state(stack, other, "dead") == "dead"
    await page.goto(f"/console/#/dead-letters?owner={owner}")
    letter = page.locator(f"tr[data-job-id='{other}']")
    await expect(letter).to_be_visible(timeout=UI_TIMEOUT_MS)
    await letter.get_by_role("button", name="Inspect").click()
    await expect(page.locator(".letter-details pre").first).to_contain_text('"times": 1')
    audit = page.locator(".audit tr[data-action='replay']").filter(has_text="ops")
    await expect(audit.first).to_be_visible()
    await shoot(page, shots, "4-dead-letters-and-audit")

    await page.get_by_role("button", name="Purge matching").click()
    await page.get_by_role("dialog").get_by_role("button", name="Purge").click()
    await expect(page.locator(".audit tr[data-action='purge']").first).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    await expect(letter).to_be_hidden()


async def test_a_settings_change_takes_effect_and_a_refused_value_is_shown_inline(
    stack: Stack, page: Page, shots: Path, admin_api: httpx.AsyncClient
) -> None:
    await page.goto("/console/")
    await page.get_by_label("Access token (JWT)").fill(stack.token("root", "ADMIN"))
    await page.get_by_role("button", name="Sign in", exact=True).first.click()
    await expect_live(page)
    await page.goto("/console/#/settings")
    try:
        ttl = page.get_by_label("jobs.completed_ttl_s", exact=True)
        await ttl.fill("5")
        await (
            page.locator("form[data-key='jobs.completed_ttl_s']")
            .get_by_role("button", name="Save")
            .click()
        )
        error = page.locator("form[data-key='jobs.completed_ttl_s'] .field-error")
        await expect(error).to_contain_text(">= 60")
        await expect(ttl).to_have_attribute("aria-invalid", "true")
        await expect(ttl).to_be_focused()
        await shoot(page, shots, "1-refused-value")

        level = page.get_by_label("log_level", exact=True)
        await level.select_option("DEBUG")
        await page.locator("form[data-key='log_level']").get_by_role("button", name="Save").click()
        await expect(page.locator("form[data-key='log_level'] .saved")).to_have_text("Saved")
        stored = await admin_api.get("/v1/settings/log_level")
        assert (stored.json()["value"], stored.json()["updated_by"]) == ("DEBUG", "root")

        await page.reload()
        await expect(page.get_by_label("log_level", exact=True)).to_have_value("DEBUG")
        await expect(page.locator("form[data-key='log_level'] .meta")).to_contain_text("root")
        await shoot(page, shots, "2-after-reload")

        await page.locator("form[data-key='log_level']").get_by_role("button", name="Reset").click()
        await expect(page.get_by_label("log_level", exact=True)).to_have_value("INFO")
    finally:
        await admin_api.delete("/v1/settings/log_level")
    assert (await admin_api.get("/v1/settings/log_level")).json()["updated_by"] is None


async def test_queues_and_system_pages_show_the_running_stack(
    stack: Stack, page: Page, shots: Path, admin_api: httpx.AsyncClient
) -> None:
    await submit(stack, "queue-watcher", {"type": "demo.echo", "payload": {"text": "tick"}})
    await dev_sign_in(page, "ops", "ADMIN")
    await page.goto("/console/#/queues")
    card = page.locator("section.queue[data-queue='default']")
    await expect(card.get_by_role("img")).to_have_attribute(
        "aria-label", re.compile(r"Throughput of default: \d+ completed and \d+ failed")
    )
    try:
        await card.get_by_role("button", name="Pause default").click()
        await expect(card).to_have_attribute("data-paused", "true")
        await expect(card).to_contain_text("by ops")
        paused = (await admin_api.get("/v1/queues/default")).json()
        assert (paused["paused"], paused["paused_by"]) == (True, "ops")
        await shoot(page, shots, "1-queue-paused")
        await card.get_by_role("button", name="Resume default").click()
        await expect(card).to_have_attribute("data-paused", "false")
    finally:
        await admin_api.post("/v1/queues/default/resume")

    await page.goto("/console/#/system")
    for check in ("redis", "postgres", "gateway", "notifier", "worker"):
        await expect(page.locator(f".checks tr[data-check='{check}']")).to_have_attribute(
            "data-status", "pass", timeout=UI_TIMEOUT_MS
        )
    await page.get_by_label("Service").select_option("gateway")
    lines = page.locator(".log-lines tbody tr")
    await expect(lines.locator("xpath=self::*[@data-service!='gateway']")).to_have_count(0)
    await expect(lines.first).to_have_attribute("data-service", "gateway")
    await page.get_by_label("Level and above").select_option("WARNING")
    await expect(lines.locator("xpath=self::*[@data-level='INFO']")).to_have_count(0)
    await shoot(page, shots, "2-system", full_page=False)


async def test_a_user_is_kept_out_of_the_admin_pages(page: Page) -> None:
    await dev_sign_in(page, f"user-{uuid.uuid4().hex[:8]}")
    nav = page.get_by_role("navigation", name="Pages")
    await expect(nav.get_by_role("link")).to_have_text(["Notifications"])
    await page.goto("/console/#/settings")
    await expect(page.get_by_text("This page is for admins.")).to_be_visible()


async def test_the_console_can_be_used_from_the_keyboard(page: Page, shots: Path) -> None:
    await page.goto("/console/")
    # The sign-in page puts focus on the first dev user; Tab moves on to the others.
    await expect(page.get_by_role("button", name="alice (USER)")).to_be_focused()
    await shoot(page, shots, "1-sign-in", full_page=False)
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="admin (ADMIN)")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#who")).to_have_text("admin (ADMIN)")

    await page.get_by_role("link", name="Dead letters").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Dead letters", level=1)).to_be_visible()
    await expect(page.locator("#main")).to_be_focused()
    await expect(page.get_by_role("link", name="Dead letters")).to_have_attribute(
        "aria-current", "page"
    )

    purge = page.get_by_role("button", name="Purge matching")
    await purge.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)
    await expect(page.locator(".status-line").first).not_to_contain_text("Purge:")
