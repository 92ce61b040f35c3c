"""The notification center in a browser: toasts, the bell's count, the list, and catch-up."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from devstack.stack import Stack
from tests.console.browsing import (
    UI_TIMEOUT_MS,
    dev_sign_in,
    expect_live,
    expect_text,
    job_state,
    shoot,
    submit,
)

pytestmark = pytest.mark.slow


def user() -> str:
    """A user of this test alone: the stack is shared, and so are its notifications."""
    return f"user-{uuid.uuid4().hex[:8]}"


async def test_a_user_gets_a_toast_and_a_higher_unread_count_when_their_job_completes(
    stack: Stack, page: Page, shots: Path
) -> None:
    sub = user()
    await dev_sign_in(page, sub)
    badge = page.locator("#unread")
    await expect(badge).to_be_hidden()
    await expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications, 0 unread")

    job_id = await submit(stack, sub, {"type": "demo.sleep", "payload": {"seconds": 1.2}})

    toast = page.locator(f".toast[data-job-id='{job_id}']")
    await expect(toast.locator("progress")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await shoot(page, shots, "1-progress-toast")
    await expect(toast.locator(".toast-title")).to_have_text(
        "demo.sleep completed", timeout=UI_TIMEOUT_MS
    )
    await expect_text(page, "#unread", "1")
    await expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications, 1 unread")
    await shoot(page, shots, "2-completed-toast-and-count")

    item = page.locator(".notification").filter(has_text=job_id)
    await expect(item).to_have_class("notification unread")
    await expect(item).to_contain_text("Job demo.sleep completed")
    await shoot(page, shots, "3-notification-list")
    await item.get_by_role("button", name="Mark read").click()
    await expect(badge).to_be_hidden(timeout=UI_TIMEOUT_MS)
    await expect(item).to_have_class("notification")


async def test_events_missed_while_the_notifier_was_down_arrive_after_the_reconnect(
    stack: Stack, page: Page, shots: Path
) -> None:
    sub = user()
    await dev_sign_in(page, sub)
    # A first event gives the page an offset to catch up from.
    first = await submit(stack, sub, {"type": "demo.echo", "payload": {"text": "first"}})
    await expect(page.locator(f".toast[data-job-id='{first}']")).to_contain_text(
        "completed", timeout=UI_TIMEOUT_MS
    )
    await expect_text(page, "#unread", "1")

    notifier = stack.services["notifier"]
    # Killed, as a crash would: quicker than a graceful stop, and nothing of ours is in flight.
    await asyncio.to_thread(notifier.kill)
    try:
        await expect(page.locator("#connection")).to_have_attribute(
            "data-state", "reconnecting", timeout=UI_TIMEOUT_MS
        )
        await shoot(page, shots, "1-reconnecting")
        missed = await submit(stack, sub, {"type": "demo.echo", "payload": {"text": "missed"}})
        assert await job_state(stack, missed, "completed") == "completed"
    finally:
        await asyncio.to_thread(notifier.restart)

    await expect_live(page)
    await expect(page.locator(".toast").filter(has_text="While you were away")).to_contain_text(
        "demo.echo completed", timeout=UI_TIMEOUT_MS
    )
    # The missed job's notification, stored once the notifier was back, counts too.
    await expect_text(page, "#unread", "2")
    await page.goto("/console/#/notifications")
    await expect(page.locator(".notification").filter(has_text=missed)).to_be_visible()
    await shoot(page, shots, "2-caught-up")
