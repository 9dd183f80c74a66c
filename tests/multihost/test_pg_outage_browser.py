"""The dashboard's login while the hive's PostgreSQL is away, in real Chromium: the login
URL still logs the browser in (the daemon answers 503, not 401), and a made-up key still
does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from dashsupport import Dash, running_dashboard
from hivetest.pg import PgServer
from playwright.async_api import BrowserContext, Page, expect

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("on_the_session_loop"),
]


@pytest_asyncio.fixture(loop_scope="session")
async def pg_dash(tmp_path: Path, own_server: PgServer) -> AsyncIterator[Dash]:
    store = {
        "database_url": own_server.database(),
        "database_password_file": own_server.password_file,
        "host_name": "alpha",
    }
    async with running_dashboard(tmp_path, **store) as running:
        yield running


async def stored_key(page: Page) -> object:
    return await page.evaluate("() => localStorage.getItem('hive.key')")


async def test_the_login_url_opened_while_the_database_is_away_logs_in_once_it_is_back(
    pg_dash: Dash, own_server: PgServer, context: BrowserContext
) -> None:
    key = pg_dash.hive.credentials.dashboard_key()
    own_server.stop_server()
    try:
        # A made-up key is refused (401) whatever the database does: nothing is stored.
        other = await context.new_page()
        made_up = f"{pg_dash.url}/login#key={'x' * 43}"
        async with other.expect_response(lambda r: r.url.endswith("/api/state")) as first:
            await other.goto(made_up)
        assert (await first.value).status == 401
        await expect(other.locator("#login-needed")).to_be_visible()
        assert await stored_key(other) is None
        await other.close()

        # The operator's own key: the daemon is up and took it, only the state is away (503).
        page = await context.new_page()
        async with page.expect_response(lambda r: r.url.endswith("/api/state")) as first:
            await page.goto(pg_dash.login_url)
        assert (await first.value).status == 503
        await expect(page.locator("#toasts")).to_contain_text("HTTP 503")
        assert await stored_key(page) == key
        await expect(page.locator("#login-needed")).to_be_hidden()
        assert "#key=" not in page.url  # the fragment is gone: it cannot be opened again
    finally:
        own_server.start_server()

    # Back: the same tab, reloaded without the fragment, shows the hive.
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("● live")
    manager = page.locator('[data-list="containers"] [data-key="agent-manager"]')
    await expect(manager).to_be_attached(timeout=30_000)
    await expect(page.locator("#login-needed")).to_be_hidden()
