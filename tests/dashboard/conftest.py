"""Dashboard fixtures: a fresh hive + dashboard per test (Chromium: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from dashsupport import Dash, running_dashboard


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
