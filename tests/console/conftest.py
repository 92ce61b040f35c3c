"""The console in a real browser: Debian's Chromium driven by Playwright, headless.

Playwright's own browser builds cannot be downloaded here, so the browser is the `chromium`
that `make install` (deploy/install-system-packages.sh) installs, launched by path. Screenshots
go to tests/console/artifacts/ (git-ignored), one folder per test, to be looked at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from devstack.stack import Stack

ARTIFACTS = Path(__file__).parent / "artifacts"
VIEWPORT = ViewportSize(width=1280, height=860)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; its absence fails, since `make install` provides it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is missing: run `bash deploy/install-system-packages.sh` as root")
    return path


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """One headless Chromium for the session; every test gets its own context."""
    async with async_playwright() as playwright:
        # No sandbox: the tests run as root in a container, where Chromium's sandbox cannot start.
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot folder, emptied."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
async def context(browser: Browser, stack: Stack) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no stored token) whose relative URLs go to the stack's gateway."""
    fresh = await browser.new_context(base_url=stack.gateway_url, viewport=VIEWPORT)
    yield fresh
    await fresh.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    """A page that fails the test on any uncaught script error."""
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    assert errors == [], f"uncaught errors in the console's scripts: {errors}"
