"""The operator's browser against a hostile page (docs/security.md), in real Chromium.

The operator logs in with the printed URL and uses the dashboard and an agent's page end to
end; then, in the same browser profile, a page served by a hostile process on another
local port — and one served on a hostile agent's own page port, opened from the dashboard's
link — tries to read the credential and to act with it. It gets nothing and changes nothing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from harness.support import spawn_quiet
from hivetest import call, drain
from hyperhive.agents.names import AgentName
from hyperhive.ports import agent_port
from playwright.async_api import BrowserContext, Page, Response, expect
from standin.api import StandIn, Text

from security.hostile_page import HostilePage
from security.scene import TOMBSTONE, Scene, hostile_scene
from security.support import free_name

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("on_the_session_loop"),
]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
UPDATE_SCREENSHOTS = os.environ.get("HYPERHIVE_UPDATE_SCREENSHOTS") == "1"
LOGIN_CMD = shlex.join(
    [sys.executable, str(Path(__file__).parents[1] / "webui" / "standin_login.py")]
)
STANDIN_OAUTH_KEY = "sk-ant-oat01-standin"
"""What the stand-in login writes as the access token: claude's key after the login."""


@pytest_asyncio.fixture(loop_scope="session")
async def scene(tmp_path: Path, claude_bin: Path, standin: StandIn) -> AsyncIterator[Scene]:
    victim = free_name("vic")
    async with hostile_scene(
        tmp_path,
        claude_bin,
        standin,
        victim=victim,
        page_port=agent_port(victim),
        logged_in=False,
        login_cmd=LOGIN_CMD,
    ) as running:
        yield running


async def operator_uses_the_dashboard(scene: Scene, page: Page, shots: Path) -> None:
    """Log in with the printed URL; T4LK, approve, deny, answer, a two-click verb."""
    await page.goto(scene.hive.login_url())
    await expect(page.locator("#conn")).to_have_text("● live")
    assert "#key=" not in page.url  # the key left the address bar
    await expect(page.locator("#login-needed")).to_be_hidden()

    talk = page.locator("form.talk")
    await talk.locator("input[name=to]").fill(scene.victim)
    await talk.locator("input[name=body]").fill("hello from the dashboard")
    await talk.locator("input[name=body]").press("Enter")
    await expect(page.locator("#flow")).to_contain_text("hello from the dashboard")

    spawn = page.locator(f'[data-key="a-{scene.spawn_id}"]')
    await spawn.get_by_role("button", name="◆ APPR0VE").click()
    await expect(spawn).to_have_count(0)
    eve = page.locator('[data-list="containers"] [data-key="agent-eve"]')
    await expect(eve.locator(".state")).to_have_text("running")

    commit = page.locator(f'[data-key="a-{scene.commit_id}"]')
    await expect(commit.locator("pre.diff")).to_contain_text("# pwn")  # the diff loaded
    await commit.locator("input[name=note]").fill("not this one")
    await commit.locator("input[name=note]").press("Enter")
    await expect(commit).to_have_count(0)

    card = page.locator(f'[data-key="q-{scene.question_id}"]')
    await card.get_by_label("yes").check()
    await card.get_by_role("button", name="answer").click()
    await expect(card).to_have_count(0)
    await page.screenshot(path=str(shots / "dashboard-logged-in.png"))
    if UPDATE_SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / "dashboard-logged-in.png", DOCS_IMG / "dashboard-logged-in.png")

    destroy = eve.locator("button.danger")
    await destroy.click()
    await expect(destroy).to_have_text("sure? DESTR0Y eve")
    assert scene.hive.registry.get(AgentName("eve")).live  # one click did nothing
    await destroy.click()
    await expect(page.locator('[data-list="tombstones"] [data-key="agent-eve"]')).to_be_attached()


async def operator_uses_the_agents_page(
    scene: Scene, context: BrowserContext, dashboard: Page, standin: StandIn
) -> Page:
    """Open the agent's page from the dashboard's link: /model, the login panel, a message."""
    link = dashboard.locator(f'[data-key="agent-{scene.victim}"] a.webui')
    key = scene.agent_reads_own_key(scene.victim)
    await expect(link).to_have_attribute("href", f"http://127.0.0.1:{scene.page.port}/#key={key}")
    async with context.expect_page() as opened:
        await link.click()
    page = await opened.value
    await expect(page.locator("#conn")).to_have_text("● live")
    assert "#key=" not in page.url

    prompt = page.locator("#input")
    await prompt.fill("/model sonnet")
    await prompt.press("Enter")
    await expect(page.locator("#model")).to_have_text("model sonnet")

    await expect(page.locator("#login")).to_be_visible()
    await page.locator("#login-start").click()
    await expect(page.locator("#login-output")).to_contain_text("Paste code here")
    await page.locator("#login-code input[name=code]").fill("good-code")
    await page.locator("#login-code button").click()
    badge = page.locator("#badge")
    await expect(badge).to_have_attribute("data-status", "online", timeout=30_000)

    standin.script(STANDIN_OAUTH_KEY, Text("hello operator"), Text("hello again"))
    await prompt.fill("hello from the operator")
    await prompt.press("Enter")
    await expect(page.locator("#term .k-op").last).to_contain_text("hello from the operator")
    # Two turns: the dashboard's T4LK (queued while logged out) and this message.
    await scene.run.wait_event("turn_end")
    await scene.run.wait_event("turn_end")
    return page


async def test_a_hostile_page_in_the_operators_browser_gets_no_credential_and_changes_nothing(
    scene: Scene, context: BrowserContext, standin: StandIn, tmp_path: Path
) -> None:
    dashboard = await context.new_page()
    await operator_uses_the_dashboard(scene, dashboard, tmp_path)
    agent_page = await operator_uses_the_agents_page(scene, context, dashboard, standin)
    await expect(agent_page.locator("#term .k-text .x").last).to_contain_text("hello")

    # A second approval and question, for the hostile page to go after.
    manager = scene.hive.lifecycle.paths(AgentName("manager")).socket
    spawn = await call(manager, "request_spawn", name="zed", description="x")
    asked = await call(manager, "ask_operator", question="again?", options=["yes"])
    dash_key = scene.dashboard_key
    page_key = scene.agent_reads_own_key(scene.victim)

    # 1. A hostile process on a port of its own.
    hostile = HostilePage(
        {
            "dashboards": [scene.dash.url],
            "pages": [scene.page.url],
            "victim": scene.victim,
            "approvals": [spawn["id"]],
            "question": asked["id"],
            "tombstone": TOMBSTONE,
        }
    )
    server = await hostile.serve()
    # What reached the dashboard and the pages in this phase, as the browser saw it.
    responses: list[Response] = []
    context.on("response", lambda r: responses.append(r))
    # 2. The attacker agent's own page port: the operator opens it from the dashboard's link.
    attacker = free_name("mal")
    await spawn_quiet(
        scene.hive.settings.host_socket,
        scene.hive.lifecycle.paths(AgentName(attacker)).socket,
        attacker,
    )
    await drain(scene.hive.lifecycle.paths(AgentName("manager")).socket)  # "spawned" notes
    before = scene.state()
    on_agent_port = HostilePage(dict(hostile.targets))
    agent_server = await on_agent_port.serve(agent_port(attacker))
    try:
        evil = await context.new_page()
        await evil.goto(server.url + "/")
        await hostile.done.wait()

        link = dashboard.locator(f'[data-key="agent-{attacker}"] a.webui')
        own = scene.agent_reads_own_key(attacker)
        await expect(link).to_have_attribute(
            "href", f"http://127.0.0.1:{agent_port(attacker)}/#key={own}"
        )
        async with context.expect_page() as opened:
            await link.click()
        await opened.value
        await on_agent_port.done.wait()
    finally:
        await agent_server.stop()
        await server.stop()

    for got in (hostile, on_agent_port):
        (storage,) = got.of("storage")
        assert storage["cookie"] == ""
        assert storage["session"] == {}
        assert storage["referrer"] == ""
        fetches = got.of("fetch")
        assert len(fetches) >= 14
        for f in fetches:
            # Refused by CORS (an error or an opaque answer), or a readable 401/403.
            assert "error" in f or f["type"] == "opaque" or f["status"] in (401, 403), f
        text = str(got.reports) + str(got.seen_headers)
        assert dash_key not in text
        assert page_key not in text
        assert "authorization" not in {h.lower() for hs in got.seen_headers for h in hs}
    assert hostile.of("storage")[0]["local"] == {}
    assert hostile.of("storage")[0]["hash"] == ""
    # The page on the attacker's port got only what the attacker already holds: its own key.
    (storage,) = on_agent_port.of("storage")
    assert storage["hash"] == f"#key={own}"
    assert storage["local"] == {}

    # The attempts did reach the servers (not stopped in the browser first): answered 401.
    ours = (scene.dash.url, scene.page.url)
    keyless = [
        (r.request.method, r.url, r.status)
        for r in responses
        if r.url.startswith(ours) and "authorization" not in await r.request.all_headers()
    ]
    assert {status for _, _, status in keyless} == {401}, keyless
    reached = {(method, url.split("/", 3)[3]) for method, url, _ in keyless}
    assert ("POST", f"approve/{spawn['id']}") in reached
    assert ("POST", "send") in reached
    assert ("POST", "api/model") in reached
    assert ("POST", "api/send") in reached

    # Nothing changed: broker rows, repos, the model file, the queue, the session.
    after = scene.state()
    for state in (before, after):
        # The daemon's own notes to the manager (the new agent spawned, an agent's login
        # state seen by crash watch) come any time; the attacker cannot cause or stop them.
        state["db"]["messages"] = [
            m for m in state["db"]["messages"] if not (m[1] == "system" and m[2] == "manager")
        ]
    for table, rows in before["db"].items():
        assert after["db"][table] == rows, table
    assert after == before
    assert scene.run.harness.settings.model_path.read_text().strip() == "sonnet"
    # The operator is still logged in on both pages.
    await expect(dashboard.locator("#conn")).to_have_text("● live")
    await expect(agent_page.locator("#conn")).to_have_text("● live")


async def test_the_dashboard_without_a_key_says_how_to_log_in_and_shows_nothing(
    scene: Scene, context: BrowserContext, tmp_path: Path
) -> None:
    page = await context.new_page()
    await page.goto(scene.dash.url + "/")
    banner = page.locator("#login-needed")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("hive-c0re login")
    await expect(page.locator("#conn")).to_have_text("○ logged out")
    await expect(page.locator(f'[data-key="a-{scene.spawn_id}"]')).to_have_count(0)
    assert scene.victim not in await page.content()
    shot = tmp_path / "dashboard-login.png"
    await page.screenshot(path=str(shot))
    if UPDATE_SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, DOCS_IMG / "dashboard-login.png")
