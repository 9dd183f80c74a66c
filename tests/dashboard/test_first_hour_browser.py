"""A new operator's first hour, walked in real Chromium (issue: a new operator's first hour).

A real `hive-c0re serve` on the local backend with harnesses on (what ./scripts/run starts),
no API key: the operator logs the dashboard in with the URL `hive-c0re login` prints,
requests and approves a spawn, sees the new agent's "needs login" badge, follows it to the
agent's page, logs the agent in there (a stand-in login command writes the credentials
claude then uses against the API stand-in), talks to it from the dashboard and reads its
reply in the dashboard's inbox and with `hive-c0re inbox`. The screenshots of the docs come
from this walk (HYPERHIVE_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from hivetest import DaemonProcess
from hyperhive.agents.names import agent_port
from playwright.async_api import Browser, BrowserContext, Page, expect
from security.support import free_name
from standin.api import JsonObj, StandIn, Step, Text, ToolCall, last_user_text
from webui.standin_login import GOOD_CODE

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("on_the_session_loop"),
]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
UPDATE_SCREENSHOTS = os.environ.get("HYPERHIVE_UPDATE_SCREENSHOTS") == "1"
STANDIN_LOGIN = Path(__file__).resolve().parents[1] / "webui" / "standin_login.py"
QUESTION = "hello, what is two plus two?"
REPLY = "hello operator: two plus two is four"


def answer_the_operator(body: JsonObj) -> Step:
    """The scripted model: a turn whose prompt holds the operator's message sends the reply
    to the operator; every other request (the boot kick, the tool results) just ends."""
    if QUESTION in last_user_text(body):
        return ToolCall("mcp__hyperhive__send", {"to": "operator", "body": REPLY})
    return Text("ok")


async def port_open(port: int, within: float = 60) -> None:
    """Wait until something listens on 127.0.0.1:`port` (the agent's page)."""
    deadline = time.monotonic() + within
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on :{port} after {within} s")
        await asyncio.sleep(0.05)


async def cli(daemon: DaemonProcess, *args: str) -> str:
    """One `hive-c0re` command as the operator types it; its stdout (it must succeed)."""
    done = await asyncio.to_thread(daemon.cli, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture
def token() -> str:
    """The access token the stand-in login writes: this test's own script key."""
    return f"sk-ant-oat01-walk-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(loop_scope="session")
async def daemon(
    tmp_path: Path, claude_bin: Path, standin: StandIn, token: str
) -> AsyncIterator[DaemonProcess]:
    """`hive-c0re serve` as ./scripts/run starts it, on a machine with no Claude login."""
    proc = DaemonProcess(
        tmp_path,
        HYPERHIVE_HARNESS="true",
        HYPERHIVE_CLAUDE_BIN=str(claude_bin),
        HYPERHIVE_LOGIN_CMD=shlex.join([sys.executable, str(STANDIN_LOGIN), token]),
        HYPERHIVE_RATE_LIMIT_SLEEP="0.5",
        ANTHROPIC_BASE_URL=standin.base_url,
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    proc.env.pop("ANTHROPIC_API_KEY", None)  # a fresh machine: no key, no login
    if "PYTHONPATH" in os.environ:  # the harnesses run the same hyperhive as this test
        proc.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    await asyncio.to_thread(proc.start, 60)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """One browser profile (the operator's); fails the test on a script error."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    try:
        yield ctx
    finally:
        await ctx.close()
    assert errors == []


async def shoot(page: Page, shots: Path, name: str, width: int) -> None:
    """A full-page screenshot at `width` px; copied into docs/img/ when asked to."""
    await page.set_viewport_size({"width": width, "height": 900 if width > 600 else 844})
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: {overflow} px of horizontal overflow"
    path = shots / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if UPDATE_SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)


async def test_the_first_hour_from_login_to_a_reply(
    daemon: DaemonProcess,
    context: BrowserContext,
    standin: StandIn,
    token: str,
    tmp_path: Path,
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    name = free_name("w")

    # 1. Log the dashboard in with the URL the CLI prints.
    printed = await cli(daemon, "login")
    found = re.search(r"http://127\.0\.0\.1:\d+/login#key=\S+", printed)
    assert found, printed
    login_url = found.group(0)
    port = urlsplit(login_url).port
    assert f"ssh -L {port}:127.0.0.1:{port} <host>" in printed  # this dashboard's port
    dash = await context.new_page()
    await dash.goto(login_url)
    await expect(dash.locator("#conn")).to_have_text("● live")
    assert "#key=" not in dash.url
    await expect(dash.locator("#login-needed")).to_be_hidden()

    # 2. Spawn: request it, then approve it.
    spawn = dash.locator("form.spawn")
    await spawn.locator("input[name=name]").fill(name)
    await spawn.locator("input[name=description]").fill("my first agent")
    await spawn.get_by_role("button", name="R3QU3ST SP4WN").click()
    card = dash.locator('[data-list="approvals"] .card.approval', has_text=name)
    await card.get_by_role("button", name="◆ APPR0VE").click()
    await expect(card).to_have_count(0)
    row = dash.locator(f'[data-list="containers"] [data-key="agent-{name}"]')
    await expect(row.locator(".state")).to_have_text("running", timeout=60_000)

    # 3. "needs login", and the way to log in: a link to the agent's page, with its key.
    badge = row.locator("a.b-login")
    await expect(badge).to_have_text("needs login → log in ↗")
    await expect(badge).to_have_attribute("title", re.compile("L0G1N"))
    await expect(badge).to_have_attribute(
        "href", re.compile(rf"^http://127\.0\.0\.1:{agent_port(name)}/#key=\S+$")
    )
    listed = await cli(daemon, "list")
    row_of_name = next(line for line in listed.splitlines() if line.startswith(name))
    assert "running (needs login)" in row_of_name, listed

    # 4. Follow it and log the agent in on its page's L0G1N panel.
    await port_open(agent_port(name))
    async with context.expect_page() as opened:
        await badge.click()
    agent = await opened.value
    await expect(agent.locator("#conn")).to_have_text("● live")
    assert "#key=" not in agent.url
    status = agent.locator("#badge")
    await expect(status).to_have_text("needs login", timeout=30_000)
    await expect(agent.locator("#login")).to_be_visible()
    await agent.locator("#login-start").click()
    await expect(agent.locator("#login-output")).to_contain_text("Paste code here")
    standin.script(token, *[answer_the_operator] * 20)
    await agent.locator("#login-code input[name=code]").fill(GOOD_CODE)
    await agent.locator("#login-code button").click()
    await expect(status).to_have_attribute("data-status", "online", timeout=30_000)
    await expect(agent.locator("#login")).to_be_hidden()

    # 5. T4LK to it from the dashboard; the badge is gone now that it has a login.
    await dash.bring_to_front()
    await expect(badge).to_have_count(0, timeout=30_000)
    talk = dash.locator("form.talk")
    await talk.locator("input[name=to]").fill(name)
    await talk.locator("input[name=body]").fill(QUESTION)
    await talk.locator("input[name=body]").press("Enter")
    await expect(dash.locator("#flow")).to_contain_text(QUESTION)

    # 6. The reply: in the dashboard's inbox (with a reply button), on the agent's page, and
    # with the CLI verb.
    inbox = dash.locator('[data-list="inbox"] .msg', has_text=REPLY)
    await expect(inbox).to_have_count(1, timeout=90_000)
    await expect(inbox.locator(".from")).to_have_text(name)
    await expect(inbox.locator("button.reply")).to_be_visible()
    await expect(agent.locator("#term")).to_contain_text(REPLY, timeout=30_000)
    await expect(status).to_have_attribute("data-state", "idle", timeout=30_000)
    read = await cli(daemon, "inbox")
    assert any(f"{name}: {REPLY}" in line for line in read.splitlines()), read

    # 7. The docs' screenshots: the dashboard at 1280 and 390 px, the agent's page (once
    # its inbox, polled, shows the question handled and the dashboard's toast is gone).
    question = agent.locator("#inbox .msg", has_text=QUESTION)
    await expect(question.locator(".flag")).to_have_text("done", timeout=30_000)
    await expect(dash.locator("#toasts .toast")).to_have_count(0)
    await shoot(dash, shots, "dashboard-desktop.png", 1280)
    await shoot(dash, shots, "dashboard-phone.png", 390)
    await shoot(agent, shots, "webui-turn.png", 1280)
