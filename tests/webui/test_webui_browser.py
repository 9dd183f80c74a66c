"""The web UI in real headless Chromium against a real harness (real claude, API stand-in).

One harness per module; each test scripts its own model steps and opens its own context.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from standin.api import Hang, StandIn, Text, ToolCall, last_user_text

from webui.webuisupport import LiveUI, running_webui

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ui(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: Path, standin: StandIn
) -> AsyncIterator[LiveUI]:
    async with running_webui(tmp_path_factory.mktemp("wb"), claude_bin, standin) as live:
        yield live


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, ui: LiveUI) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        await page.goto(ui.login_url)
        await expect(page.locator("#conn")).to_have_text("● live")
        yield page
    finally:
        await context.close()


async def turn_end(ui: LiveUI, message_id: int | None, within: float = 60) -> dict[str, object]:
    event = await ui.run.wait_event(
        "turn_end", lambda e: e.payload["message_id"] == message_id, within
    )
    return event.payload


async def test_tool_calls_appear_live_in_order(ui: LiveUI, page: Page, standin: StandIn) -> None:
    notes = ui.run.root / "state" / "notes.md"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("line one\n" * 40)
    standin.script(
        ui.key,
        ToolCall("Read", {"file_path": str(notes)}),
        ToolCall("Bash", {"command": "echo hi from bash"}),
        ToolCall("mcp__hyperhive__send", {"to": "operator", "body": "read them, all fine"}),
        Text("all done"),
    )
    before = await page.locator("#term .k-tool").count()
    mid = await ui.send("read your notes and report")
    tools = page.locator("#term .k-tool")
    await expect(tools).to_have_count(before + 3, timeout=60_000)
    texts = [t.strip() for t in (await tools.all_inner_texts())[before:]]
    assert texts[0].endswith(f"Read {notes}"), texts
    assert texts[1].endswith("Bash $ echo hi from bash"), texts
    assert texts[2].endswith("send → operator: read them, all fine"), texts
    assert (await turn_end(ui, mid))["ok"] is True
    # The Read result (40 lines, and claude numbers an empty 41st) is collapsed under its
    # call; the short Bash result is shown as is.
    read_result = tools.nth(before).locator("xpath=following-sibling::div[1]")
    await expect(read_result.locator("details > summary")).to_contain_text("result · 41 lines")
    await expect(read_result.locator("details > pre")).to_be_hidden()
    bash_result = tools.nth(before + 1).locator("xpath=following-sibling::div[1]")
    await expect(bash_result.locator("pre")).to_have_text("hi from bash")
    await expect(page.locator("#term .k-text .x").last).to_have_text("all done")
    await expect(page.locator("#last")).to_contain_text("$")


async def test_reload_shows_the_same_history(ui: LiveUI, page: Page, standin: StandIn) -> None:
    standin.script(ui.key, ToolCall("Bash", {"command": "echo before reload"}), Text("reloaded?"))
    mid = await ui.send("something to remember")
    await turn_end(ui, mid)
    term = page.locator("#term > :not(.k-help)")
    await expect(page.locator("#term .k-text .x").last).to_have_text("reloaded?")
    live = await term.all_inner_texts()
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("● live")
    await expect(page.locator("#term .k-text .x").last).to_have_text("reloaded?")
    assert await term.all_inner_texts() == live
    assert any("Bash $ echo before reload" in t for t in live)


async def test_model_command_persists_and_the_next_turn_uses_it(
    ui: LiveUI, page: Page, standin: StandIn
) -> None:
    model_file = ui.run.harness.settings.model_path
    prompt = page.locator("#input")
    await prompt.fill("/model sonnet")
    await prompt.press("Enter")
    await expect(page.locator("#model")).to_have_text("model sonnet")
    assert model_file.read_text().strip() == "sonnet"
    await expect(prompt).to_have_value("")
    try:
        standin.script(ui.key, Text("now on sonnet"))
        mid = await ui.send("which model?")
        start = await ui.run.wait_event("turn_start", lambda e: e.payload["message_id"] == mid)
        assert start.payload["model"] == "sonnet"
        await turn_end(ui, mid)
        # What claude itself asked the API for: the alias resolved from --model sonnet.
        asked = standin.received(ui.key)[-1].body["model"]
        assert "sonnet" in asked, asked
    finally:
        status, _ = await ui.request("POST", "/api/model", {"model": "default"})
        assert status == 200
    assert not model_file.exists()


async def test_cancel_while_thinking_stops_the_turn(
    ui: LiveUI, page: Page, standin: StandIn, tmp_path: Path
) -> None:
    hang = Hang(max_seconds=120)
    standin.script(
        ui.key,
        ToolCall("Bash", {"command": "ls /"}),
        ToolCall("mcp__hyperhive__send", {"to": "operator", "body": "on it, this takes a while"}),
        hang,
    )
    mid = await ui.send("start the long job")
    assert await asyncio.to_thread(hang.started.wait, 60)
    badge = page.locator("#badge")
    await expect(badge).to_have_attribute("data-state", "thinking")
    await expect(badge).to_contain_text("thinking ·")
    await expect(page.locator("#term .k-tool.send").last).to_contain_text("on it, this takes")
    shot = tmp_path / "webui-turn.png"
    await page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # docs/img's: the first-hour walk
    await page.locator("#cancel").click()
    end = await turn_end(ui, mid, within=30)
    assert end["outcome"] == "cancelled"
    await expect(badge).to_have_attribute("data-state", "idle")
    await expect(page.locator("#cancel")).to_be_hidden()
    await expect(page.locator("#term .k-end.cancelled").last).to_contain_text("turn cancelled")


async def test_typing_survives_a_live_update(ui: LiveUI, page: Page, standin: StandIn) -> None:
    prompt = page.locator("#input")
    await prompt.click()
    await prompt.press_sequentially("half a thought")
    await prompt.press("Shift+Enter")
    await prompt.press_sequentially("second line")
    standin.script(ui.key, ToolCall("Bash", {"command": "echo busy"}), Text("updated meanwhile"))
    mid = await ui.send("do something while the operator types")
    await turn_end(ui, mid)
    await expect(page.locator("#term .k-text .x").last).to_have_text("updated meanwhile")
    await expect(prompt).to_have_value("half a thought\nsecond line")
    assert await page.evaluate("document.activeElement.id") == "input"


async def test_prompt_sends_an_operator_message_that_runs_a_turn(
    ui: LiveUI, page: Page, standin: StandIn
) -> None:
    standin.script(ui.key, Text("hello operator, got it"))
    prompt = page.locator("#input")
    await prompt.fill("hello from the web UI")
    await prompt.press("Enter")
    await expect(prompt).to_have_value("")
    typed = page.locator("#term .k-op .x").last
    await expect(typed).to_have_text("operator: hello from the web UI")
    end = await turn_end(ui, None)
    assert end["ok"] is True
    sent = last_user_text(standin.received(ui.key)[-1].body)
    assert "typed into your web UI" in sent
    assert "hello from the web UI" in sent
    await expect(page.locator("#term .k-text .x").last).to_have_text("hello operator, got it")


async def test_tab_completes_and_unknown_commands_show_help(ui: LiveUI, page: Page) -> None:
    prompt = page.locator("#input")
    await prompt.fill("/mo")
    await prompt.press("Tab")
    await expect(prompt).to_have_value("/model ")
    await prompt.press_sequentially("son")
    await prompt.press("Tab")
    await expect(prompt).to_have_value("/model sonnet")
    await prompt.fill("/new")
    await prompt.press("Tab")
    await expect(prompt).to_have_value("/new-session")
    await prompt.fill("/frobnicate")
    await prompt.press("Enter")
    help_line = page.locator("#term .k-help").last
    await expect(help_line).to_contain_text("unknown command /frobnicate")
    await expect(help_line).to_contain_text("/new-session")
    await expect(prompt).to_have_value("/frobnicate")  # kept, so it can be fixed


async def test_inbox_shows_broker_messages_live(ui: LiveUI, page: Page, standin: StandIn) -> None:
    standin.script(ui.key, Text("noted"))
    mid = await ui.send("inbox check 4711")
    row = page.locator(f"#inbox .msg[data-id='{mid}']")
    await expect(row).to_contain_text("inbox check 4711")
    await expect(row.locator(".from")).to_have_text("operator")
    await turn_end(ui, mid)
    await expect(row.locator(".flag")).to_have_text("done")


async def test_notification_when_the_agent_writes_to_the_operator(
    ui: LiveUI, browser: Browser, standin: StandIn
) -> None:
    context = await browser.new_context()
    try:
        # Record notifications instead of showing them (headless has no notification UI).
        await context.add_init_script(
            """
            window.__notes = [];
            window.Notification = class {
              static permission = "granted";
              static requestPermission() { return Promise.resolve("granted"); }
              constructor(title, opts) { window.__notes.push({ title, ...opts }); }
            };
            """
        )
        page = await context.new_page()
        await page.goto(ui.login_url)
        await expect(page.locator("#conn")).to_have_text("● live")
        await page.locator("#notify").click()
        await expect(page.locator("#notify")).to_have_text("◆ notify on")
        standin.script(
            ui.key,
            ToolCall("mcp__hyperhive__send", {"to": "operator", "body": "need your eyes"}),
            Text("asked"),
        )
        mid = await ui.send("ping the operator")
        await turn_end(ui, mid)
        await expect(page.locator("#term .k-text .x").last).to_have_text("asked")
        notes = await page.evaluate("window.__notes")
        assert [(n["title"], n["body"]) for n in notes] == [("alice → operator", "need your eyes")]
    finally:
        await context.close()


async def test_scrolled_up_the_view_stays_and_a_pill_counts_new_lines(
    ui: LiveUI, page: Page
) -> None:
    bus = ui.run.harness.bus
    for n in range(80):
        bus.publish("note", {"source": "test", "text": f"filler {n}"})
    term = page.locator("#term")
    await expect(term.locator(".k-note").last).to_contain_text("filler 79")
    await term.evaluate("t => { t.scrollTop = 0; }")
    for n in range(3):
        bus.publish("note", {"source": "test", "text": f"while away {n}"})
    await expect(term.locator(".k-note").last).to_contain_text("while away 2")
    pill = page.locator("#pill")
    await expect(pill).to_have_text("↓ 3 new")
    assert await term.evaluate("t => t.scrollTop") == 0
    await pill.click()
    await expect(pill).to_be_hidden()
    assert await term.evaluate("t => t.scrollHeight - t.scrollTop - t.clientHeight < 30")


async def test_each_tool_has_its_own_one_line_form(ui: LiveUI, page: Page) -> None:
    # One assistant line as claude prints it (stream-json), with a call of every kind.
    calls = [
        ("Write", {"file_path": "/state/a.md", "content": "one\ntwo\nthree"}),
        ("Edit", {"file_path": "/state/a.md", "old_string": "one", "new_string": "1"}),
        ("Glob", {"pattern": "**/*.nix", "path": "/state"}),
        ("Grep", {"pattern": "TODO"}),
        ("mcp__hyperhive__recv", {"wait_seconds": 180}),
        ("mcp__hyperhive__ask_operator", {"question": "deploy now?", "options": ["yes"]}),
        ("mcp__hyperhive__whoami", {}),
        ("mcp__forge__view", {"number": 42}),
    ]
    content = [
        {"type": "tool_use", "id": f"toolu_form{n}", "name": name, "input": args}
        for n, (name, args) in enumerate(calls)
    ]
    before = await page.locator("#term .k-tool").count()
    ui.run.harness.bus.publish(
        "stream", {"type": "assistant", "message": {"role": "assistant", "content": content}}
    )
    tools = page.locator("#term .k-tool")
    await expect(tools).to_have_count(before + len(calls))
    texts = [t.split("\n")[-1].strip() for t in (await tools.all_inner_texts())[before:]]
    assert [t.split("⚙", 1)[-1].strip() for t in texts] == [
        "Write /state/a.md (3 lines)",
        "Edit /state/a.md",
        "Glob **/*.nix in /state",
        "Grep TODO",
        "recv (wait 180 s)",
        "ask_operator: deploy now?",
        "whoami",
        'forge.view {"number":42}',
    ]


async def test_the_logs_box_has_a_disclosure_marker(ui: LiveUI, page: Page) -> None:
    # A <details> whose marker the page's CSS removed looked like an empty box.
    summary = page.locator("#logs > summary")
    marker = "(s) => getComputedStyle(s, '::before').content"
    closed = await summary.evaluate(marker)
    assert closed not in ("none", "normal", '""'), closed
    await summary.click()
    await expect(page.locator("#journal")).to_be_visible()
    opened = await summary.evaluate(marker)
    assert opened not in ("none", "normal", '""', closed), opened


async def test_a_typed_message_opens_a_block_of_its_own(
    ui: LiveUI, page: Page, standin: StandIn
) -> None:
    # It used to be drawn under the last turn's end line, inside that turn's block: the
    # block boundary (the dashed rule) came only with the next turn's start line.
    standin.script(ui.key, Text("a turn before"))
    await turn_end(ui, await ui.send("a turn to end a block"))
    await expect(page.locator("#term .k-text .x").last).to_have_text("a turn before")
    standin.script(ui.key, Text("answered"))
    prompt = page.locator("#input")
    await prompt.fill("a message of its own")
    await prompt.press("Enter")
    typed = page.locator("#term .k-op").last
    await expect(typed).to_contain_text("a message of its own")
    await turn_end(ui, None)
    await expect(page.locator("#term .k-text .x").last).to_have_text("answered")
    border = "(n) => getComputedStyle(n).borderTopStyle"
    assert await typed.evaluate(border) == "dashed"  # the boundary is above the message
    started = typed.locator("xpath=following-sibling::div[contains(@class, 'k-turn')][1]")
    assert await started.evaluate(border) == "none"  # and the turn it starts joins it
    assert await typed.evaluate(
        "(n) => n.previousElementSibling.classList.contains('k-end')"
    ), "the message follows the previous turn's end line"
