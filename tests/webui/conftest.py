"""Web UI fixtures: one real headless Chromium per test session (Debian's; never downloaded)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
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


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Chromium for the whole session; each test opens its own context."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The session's event loop (the one the browser and the module harnesses live on)."""
    return asyncio.get_running_loop()


@pytest.fixture(autouse=True)
def _on_the_session_loop(session_loop: asyncio.AbstractEventLoop) -> None:
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
