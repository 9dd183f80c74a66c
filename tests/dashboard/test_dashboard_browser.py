"""The dashboard in real headless Chromium (Playwright) against a real in-process daemon."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from dashsupport import Dash, git, until
from hivetest import drain
from hyperhive.agents.names import agent_port
from hyperhive.dashboard import start_dashboard
from playwright.async_api import Browser, BrowserContext, Page, expect

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("on_the_session_loop"),
]


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile per test; fails the test on a script error or CSP violation."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    ctx.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield ctx
    finally:
        await ctx.close()
    assert errors == []


async def open_page(context: BrowserContext, dash: Dash) -> Page:
    """The dashboard, once its live stream is connected and synced."""
    page = await context.new_page()
    await page.goto(dash.login_url)
    await expect(page.locator("#conn")).to_have_text("● live")
    return page


async def test_a_question_appears_live_and_the_answer_reaches_the_agent(
    live_dash: Dash, context: BrowserContext
) -> None:
    await live_dash.hive.lifecycle.spawn("alice")
    page = await open_page(context, live_dash)
    await drain(live_dash.socket("alice"))
    asked = await live_dash.agent(
        "alice", "ask_operator", question="deploy on friday?", options=["yes", "no"]
    )
    card = page.locator(f'[data-key="q-{asked["id"]}"]')
    await expect(card).to_contain_text("deploy on friday?")
    await card.get_by_label("no").check()
    await card.get_by_role("button", name="answer").click()
    await expect(card).to_have_count(0)
    await expect(page.locator(".toast")).to_contain_text(f"answered question #{asked['id']}")
    got = await drain(live_dash.socket("alice"))
    event = json.loads(got[-1]["body"])
    assert (event["event"], event["answer"]) == ("operator_answered", "no")


async def test_cancel_and_ttl_countdown(live_dash: Dash, context: BrowserContext) -> None:
    await live_dash.hive.lifecycle.spawn("alice")
    page = await open_page(context, live_dash)
    asked = await live_dash.agent("alice", "ask_operator", question="ok?", ttl_seconds=3600)
    card = page.locator(f'[data-key="q-{asked["id"]}"]')
    await expect(card.locator(".ttl")).to_contain_text("59m")
    await card.get_by_role("button", name="cancel").click()
    await expect(card).to_have_count(0)
    assert live_dash.hive.questions.list_open() == []


async def test_approving_a_spawn_creates_the_agent(
    live_dash: Dash, context: BrowserContext
) -> None:
    page = await open_page(context, live_dash)
    await page.locator("form.spawn input[name=name]").fill("erin")
    await page.locator("form.spawn input[name=description]").fill("writes docs")
    await page.get_by_role("button", name="R3QU3ST SP4WN").click()
    card = page.locator(".approval", has_text="erin")
    await expect(card).to_contain_text("writes docs")
    await card.get_by_role("button", name="◆ APPR0VE").click()
    await expect(card).to_have_count(0)
    row = page.locator('[data-key="agent-erin"]')
    await expect(row.locator(".state")).to_have_text("running")
    assert live_dash.hive.registry.get("erin").live
    # The link carries erin's page key although erin appeared after the page loaded.
    key = live_dash.hive.credentials.page_key("erin")
    await expect(row.locator("a.webui")).to_have_attribute(
        "href", f"http://127.0.0.1:{agent_port('erin')}/#key={key}"
    )


async def test_deny_with_a_note(live_dash: Dash, context: BrowserContext) -> None:
    approval_id = await live_dash.hive.approvals.request_spawn("frank", "a second opinion")
    page = await open_page(context, live_dash)
    card = page.locator(f'[data-key="a-{approval_id}"]')
    await expect(page).to_have_title("(1) hyperhive ◆ hive-c0re")
    await card.locator("input[name=note]").fill("one is enough")
    await card.locator("input[name=note]").press("Enter")  # Enter in the note denies
    await expect(card).to_have_count(0)
    approval = live_dash.hive.approvals.get(approval_id)
    assert (approval.status, approval.note) == ("denied", "one is enough")
    await expect(page).to_have_title("hyperhive ◆ hive-c0re")
    assert live_dash.hive.registry.find("frank") is None


async def test_destroy_needs_two_clicks_then_tombstone_revives(
    live_dash: Dash, context: BrowserContext
) -> None:
    await live_dash.hive.lifecycle.spawn("gina")
    page = await open_page(context, live_dash)
    row = page.locator('[data-list="containers"] [data-key="agent-gina"]')
    button = row.locator("button.danger")
    await button.click()
    await expect(button).to_have_text("sure? DESTR0Y gina")
    assert live_dash.hive.registry.get("gina").live  # one click did nothing yet
    await button.click()
    tomb = page.locator('[data-list="tombstones"] [data-key="agent-gina"]')
    await expect(tomb).to_contain_text("gina")
    await expect(row).to_have_count(0)
    await expect(tomb.get_by_role("button", name="PURG3")).to_be_visible()
    await tomb.get_by_role("button", name="⊕ R3V1V3").click()
    await expect(row.locator(".state")).to_have_text("running")
    await expect(tomb).to_have_count(0)
    assert live_dash.hive.registry.get("gina").live


async def test_purge_from_the_tombstone(live_dash: Dash, context: BrowserContext) -> None:
    await live_dash.hive.lifecycle.spawn("hank")
    await live_dash.hive.lifecycle.destroy("hank")
    page = await open_page(context, live_dash)
    tomb = page.locator('[data-key="agent-hank"]')
    purge = tomb.get_by_role("button", name="PURG3")
    await purge.click()
    await expect(tomb.locator("button.armed")).to_have_count(1)
    await tomb.locator("button.armed").click()
    await expect(tomb).to_have_count(0)
    assert live_dash.hive.registry.find("hank") is None


async def test_talk_sends_a_message_the_agent_receives(
    live_dash: Dash, context: BrowserContext
) -> None:
    await live_dash.hive.lifecycle.spawn("ivy")
    page = await open_page(context, live_dash)
    await drain(live_dash.socket("ivy"))
    talk = page.locator("form.talk")
    await talk.locator("input[name=to]").fill("ivy")
    await talk.locator("input[name=body]").fill("status report please")
    await talk.locator("input[name=body]").press("Enter")
    await expect(page.locator("#flow")).to_contain_text("status report please")
    await expect(talk.locator("input[name=body]")).to_have_value("")
    got = await drain(live_dash.socket("ivy"))
    assert [(m["from"], m["body"]) for m in got] == [("operator", "status report please")]
    await live_dash.agent("ivy", "send", to="operator", body="all green")
    await expect(page.locator('[data-list="inbox"]')).to_contain_text("all green")


async def test_typed_answer_survives_ten_live_updates(
    live_dash: Dash, context: BrowserContext
) -> None:
    await live_dash.hive.lifecycle.spawn("jack")
    page = await open_page(context, live_dash)
    asked = await live_dash.agent("jack", "ask_operator", question="name the release")
    field = page.locator(f'[data-key="q-{asked["id"]}"] input[name=text]')
    await field.click()
    await field.press_sequentially("v2.0-rc")
    before = int(await page.evaluate("document.body.dataset.seq"))
    for i in range(10):
        await live_dash.agent("jack", "send", to="operator", body=f"update {i}")
    await expect(page.locator("#flow")).to_contain_text("update 9")
    assert int(await page.evaluate("document.body.dataset.seq")) >= before + 10
    await expect(field).to_have_value("v2.0-rc")
    await expect(field).to_be_focused()
    # a state change of the asker's row and a full resync keep it too
    await live_dash.hive.lifecycle.restart("jack")
    await page.evaluate("sync()")
    await expect(field).to_have_value("v2.0-rc")


async def test_folded_sections_stay_folded_across_updates_and_reloads(
    live_dash: Dash, context: BrowserContext
) -> None:
    await live_dash.hive.lifecycle.spawn("olga")
    page = await open_page(context, live_dash)
    questions = page.locator('details[data-sec="questions"]')
    await questions.locator("summary").click()
    await expect(questions).not_to_have_attribute("open", "")
    asked = await live_dash.agent("olga", "ask_operator", question="still folded?")
    await expect(page.locator(f'[data-key="q-{asked["id"]}"]')).to_be_attached()
    await expect(questions.locator("[data-count]")).to_have_text("(1)")
    await expect(questions).not_to_have_attribute("open", "")
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("● live")
    await expect(questions).not_to_have_attribute("open", "")
    await expect(page.locator('details[data-sec="approvals"]')).to_have_attribute("open", "")


async def test_the_page_catches_up_after_the_dashboard_restarts(
    live_dash: Dash, context: BrowserContext
) -> None:
    await live_dash.hive.lifecycle.spawn("pat")
    page = await open_page(context, live_dash)
    port = live_dash.bound.port
    await live_dash.bound.stop()
    await expect(page.locator("#conn")).to_have_text("○ reconnecting")
    asked = await live_dash.agent("pat", "ask_operator", question="missed me?")
    await live_dash.hive.lifecycle.kill("pat")
    live_dash.bound = await start_dashboard(live_dash.hive, port=port)  # same port: REUSEADDR
    await expect(page.locator("#conn")).to_have_text("● live")
    await expect(page.locator(f'[data-key="q-{asked["id"]}"]')).to_contain_text("missed me?")
    await expect(page.locator('[data-key="agent-pat"] .state')).to_have_text("stopped")


async def test_a_second_tab_sees_the_same_updates(live_dash: Dash, context: BrowserContext) -> None:
    await live_dash.hive.lifecycle.spawn("kim")
    first = await open_page(context, live_dash)
    second = await open_page(context, live_dash)
    asked = await live_dash.agent("kim", "ask_operator", question="lunch?")
    for page in (first, second):
        await expect(page.locator(f'[data-key="q-{asked["id"]}"]')).to_contain_text("lunch?")
    await second.locator(f'[data-key="q-{asked["id"]}"] input[name=text]').fill("noodles")
    await second.locator(f'[data-key="q-{asked["id"]}"] button', has_text="answer").click()
    await expect(first.locator(f'[data-key="q-{asked["id"]}"]')).to_have_count(0)


async def test_journal_viewer_and_flow_pill(live_dash: Dash, context: BrowserContext) -> None:
    await live_dash.hive.lifecycle.spawn("lea")
    log = live_dash.hive.lifecycle.paths("lea").harness_log  # type: ignore[arg-type]
    with log.open("a") as f:  # append: with the local backend a real harness writes here too
        f.write("marker: turn 1 ok\n")
    page = await open_page(context, live_dash)
    logs = page.locator("#logs-lea")
    await logs.locator("summary").click()
    await expect(logs.locator("pre")).to_contain_text("marker: turn 1 ok")
    with log.open("a") as f:  # an open viewer follows the log
        f.write("marker: turn 2 ok\n")
    await expect(logs.locator("pre")).to_contain_text("marker: turn 2 ok")
    # the open viewer survives its row being re-rendered
    await live_dash.hive.lifecycle.kill("lea")
    await expect(page.locator('[data-key="agent-lea"] .state')).to_have_text("stopped")
    await expect(logs).to_have_attribute("open", "")
    # scrolled up: new messages raise the pill instead of scrolling
    for i in range(40):
        await live_dash.hive.broker.send("operator", "manager", f"line {i}")
    await expect(page.locator("#flow")).to_contain_text("line 39")
    await page.evaluate("document.querySelector('#flow').scrollTop = 0")
    await live_dash.hive.broker.send("operator", "manager", "after scroll")
    pill = page.locator("#pill")
    await expect(pill).to_be_visible()
    await expect(pill).to_contain_text("↓ 1 new")
    await pill.click()
    await expect(pill).to_be_hidden()


async def test_notifications_are_opt_in_and_tagged(
    live_dash: Dash, context: BrowserContext
) -> None:
    await live_dash.hive.lifecycle.spawn("mo")
    await context.grant_permissions(["notifications"], origin=live_dash.url)
    await context.add_init_script(
        "window.__notes = []; window.Notification = class { static permission = 'granted';"
        " static requestPermission() { return Promise.resolve('granted'); }"
        " constructor(title, opts) { window.__notes.push(opts.tag); } };"
    )
    page = await open_page(context, live_dash)
    await live_dash.agent("mo", "ask_operator", question="before opt-in")
    await expect(page.locator(".question")).to_have_count(1)
    assert await page.evaluate("window.__notes") == []
    await page.locator("#notify").click()
    await expect(page.locator("#notify")).to_have_text("◆ notify on")
    asked = await live_dash.agent("mo", "ask_operator", question="after opt-in")
    await expect(page.locator(".question")).to_have_count(2)
    assert await page.evaluate("window.__notes") == [f"q-{asked['id']}"]


async def test_page_reads_well_at_desktop_and_phone_width(
    live_dash: Dash, browser: Browser, tmp_path: Path
) -> None:
    """A busy hive: no horizontal overflow at 1280 px or 390 px (screenshots in tmp_path;
    the docs' come from the first-hour walk, test_first_hour_browser.py)."""
    hive = live_dash.hive
    for name in ("alice", "bob", "carol"):
        await hive.lifecycle.spawn(name)
    await hive.lifecycle.kill("carol")
    await hive.lifecycle.spawn("dave")
    await hive.lifecycle.destroy("dave")
    await live_dash.agent("manager", "send", to="alice", body="please review the schema")
    await live_dash.agent("alice", "send", to="manager", body="schema looks fine, one nit")
    await live_dash.agent("bob", "send", to="operator", body="build is green again")
    await live_dash.agent(
        "alice",
        "ask_operator",
        question="may I drop the legacy table?",
        options=["yes", "no", "after the release"],
        ttl_seconds=1800,
    )
    await hive.approvals.request_spawn("eve", "security reviewer for the auth module")
    config = hive.lifecycle.paths("bob").config  # type: ignore[arg-type]
    agent_nix = config / "agent.nix"
    text = agent_nix.read_text().replace("pkgs.jq\n", "pkgs.jq\n    pkgs.hugo\n")
    agent_nix.write_text(text.replace('model = "haiku"', 'model = "sonnet"'))
    git(config, "commit", "-qam", "bob: docs tooling")
    await live_dash.agent(
        "manager",
        "request_apply_commit",
        agent="bob",
        commit_ref=git(config, "rev-parse", "HEAD"),
        description="bob needs the docs toolchain",
    )
    for label, width, height in (("desktop", 1280, 1000), ("phone", 390, 844)):
        ctx = await browser.new_context(viewport={"width": width, "height": height})
        try:
            page = await ctx.new_page()
            await page.goto(live_dash.login_url)
            await expect(page.locator("#conn")).to_have_text("● live")
            await expect(page.locator("pre.diff")).to_contain_text("+    pkgs.hugo")
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{label}: {overflow}px horizontal overflow"
            shot = tmp_path / f"dashboard-{label}.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            await ctx.close()


async def test_apply_commit_card_shows_the_diff_and_approve_tags_the_deploy(
    live_dash: Dash, context: BrowserContext
) -> None:
    hive = live_dash.hive
    await hive.lifecycle.spawn("nia")
    paths = hive.lifecycle.paths("nia")  # type: ignore[arg-type]
    agent_nix = paths.config / "agent.nix"
    agent_nix.write_text(agent_nix.read_text() + "# give nia more memory\n")
    git(paths.config, "commit", "-qam", "more memory")
    sha = git(paths.config, "rev-parse", "HEAD")
    reply = await live_dash.agent(
        "manager", "request_apply_commit", agent="nia", commit_ref=sha, description="more memory"
    )
    assert reply["kind"] == "ok", reply
    page = await open_page(context, live_dash)
    card = page.locator(f'[data-key="a-{reply["id"]}"]')
    await expect(card.locator("pre.diff .add")).to_contain_text("+# give nia more memory")
    await expect(card.locator(".sha")).to_contain_text(sha[:10])
    await card.get_by_role("button", name="◆ APPR0VE").click()
    await expect(card).to_have_count(0)

    async def deployed() -> bool:
        return f"deployed/{reply['id']}" in git(paths.applied, "tag", "-l")

    await until(deployed, within=60)
    tags = git(paths.applied, "tag", "-l").split()
    assert {f"proposal/{reply['id']}", f"approved/{reply['id']}"} <= set(tags)
