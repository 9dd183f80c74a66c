"""Dashboard fixtures: a fresh hive + dashboard per test; one Chromium per test session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from dashsupport import Dash, running_dashboard
from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest_asyncio.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Dash]:
    """Hive + dashboard on the test's own event loop."""
    async with running_dashboard(tmp_path) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def live_dash(tmp_path: Path) -> AsyncIterator[Dash]:
    """Hive + dashboard on the session loop (the browser's), for browser tests."""
    async with running_dashboard(tmp_path) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One real headless Chromium for the whole session (Debian's; never downloaded)."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
