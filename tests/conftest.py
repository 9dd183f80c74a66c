"""Shared fixtures. Keep this small and generic: domain fixtures live next to their tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from hivetest.pg import PgServer
from playwright.async_api import Browser, BrowserContext, async_playwright
from standin.api import StandIn


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The pinned claude CLI: ``$HYPERHIVE_TEST_CLAUDE`` or ``claude`` on PATH. Never skipped."""
    found = os.environ.get("HYPERHIVE_TEST_CLAUDE") or shutil.which("claude")
    if not found or not Path(found).is_file():
        pytest.fail(
            "the claude CLI was not found: install the pinned version "
            "(npm install @anthropic-ai/claude-code@<claude-version>) and set "
            "HYPERHIVE_TEST_CLAUDE to its bin/claude, or put claude on PATH",
            pytrace=False,
        )
    return Path(found)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server per test process (started on first use, stopped after);
    each test takes its own database with `pg_server.database()`."""
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    """One Anthropic API stand-in per test process; tests keep apart by API key."""
    with StandIn() as server:
        yield server


# -- browser tests (dashboard, web UI): one real Chromium per test session --------------

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


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Chromium for the whole session; each test opens its own context."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (1280x900, 15 s timeouts) for one test; closed after.
    Tests that also watch for script errors define their own."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The session's event loop (the one the browser and the module harnesses live on)."""
    return asyncio.get_running_loop()


@pytest.fixture
def on_the_session_loop(session_loop: asyncio.AbstractEventLoop) -> None:
    """Run each test on the session loop.

    pytest-asyncio 0.24 runs a test on whatever loop is *current*; a function-scoped async
    test of another module (interleaved here by xdist) leaves a fresh loop current, and a
    browser made on the session loop then fails with "attached to a different loop".
    That fresh loop is closed here, not just replaced (it would leak its self-pipe).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            current: asyncio.AbstractEventLoop | None = (
                asyncio.get_event_loop_policy().get_event_loop()
            )
        except RuntimeError:
            current = None
    if (
        current is not None
        and current is not session_loop
        and not current.is_running()
        and not getattr(current, "__pytest_asyncio", False)
    ):
        current.close()
    asyncio.set_event_loop(session_loop)
