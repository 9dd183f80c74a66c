"""The login panel in Chromium: a harness without credentials, a stand-in login command."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from hyperhive.harness.loop import Availability, credentials_file
from playwright.async_api import Browser, Page, expect
from standin.api import StandIn

from webui.standin_login import GOOD_CODE, URL
from webui.webuisupport import LiveUI, running_webui

pytestmark = pytest.mark.asyncio(loop_scope="session")

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
LOGIN_CMD = shlex.join([sys.executable, str(Path(__file__).with_name("standin_login.py"))])


@pytest_asyncio.fixture(loop_scope="session")
async def ui(tmp_path: Path, standin: StandIn) -> AsyncIterator[LiveUI]:
    # The login command is a stand-in and no turn runs: no claude (checked on exit).
    async with running_webui(tmp_path, None, standin, logged_in=False, login_cmd=LOGIN_CMD) as live:
        await live.run.wait_event("state", lambda e: e.payload["status"] == "needs_login")
        yield live


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, ui: LiveUI) -> AsyncIterator[Page]:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(ui.login_url)
        await expect(page.locator("#conn")).to_have_text("● live")
        yield page
    finally:
        await context.close()


async def test_login_flow_shows_the_url_takes_the_code_and_ends_online(
    ui: LiveUI, page: Page
) -> None:
    badge = page.locator("#badge")
    await expect(badge).to_have_text("needs login")
    await expect(page.locator("#login")).to_be_visible()
    await page.locator("#login-start").click()
    link = page.locator("#login-url")
    await expect(link).to_have_attribute("href", URL)
    await expect(page.locator("#login-output")).to_contain_text("Paste code here")
    if os.environ.get("HYPERHIVE_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(DOCS_IMG / "webui-login.png"))
    await page.locator("#login-code input[name=code]").fill(GOOD_CODE)
    await page.locator("#login-code button").click()
    await expect(badge).to_have_attribute("data-status", "online", timeout=30_000)
    await expect(badge).to_have_text("idle")
    await expect(page.locator("#login")).to_be_hidden()
    assert ui.run.harness.loop.status is Availability.ONLINE
    assert credentials_file(ui.run.harness.loop.env).is_file()


async def test_a_wrong_code_fails_clearly_and_stays_logged_out(ui: LiveUI, page: Page) -> None:
    await page.locator("#login-start").click()
    await expect(page.locator("#login-url")).to_have_attribute("href", URL)
    await page.locator("#login-code input[name=code]").fill("not-the-code")
    await page.locator("#login-code button").click()
    await expect(page.locator("#login-note")).to_contain_text("exited with code 1")
    await expect(page.locator("#login-note")).to_contain_text("Invalid code")
    await expect(page.locator("#badge")).to_have_text("needs login")
    assert ui.run.harness.loop.status is Availability.NEEDS_LOGIN
    # The pasted code is a credential: it must not be in any event.
    store = ui.run.harness.store
    assert store is not None
    await store.flush()
    assert not any("not-the-code" in str(e.payload) for e in store.list_recent(2000))


async def test_sending_while_logged_out_is_refused(ui: LiveUI) -> None:
    status, body = await ui.request("POST", "/api/send", {"body": "hello?"})
    assert status == 409
    assert "not logged in" in body["error"]
