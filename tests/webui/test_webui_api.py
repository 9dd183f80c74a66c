"""The web UI's HTTP API against a real harness: bad input, origin checks, history, stream."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from hyperhive.webui.control import MAX_MESSAGE
from standin.api import Hang, Kind, StandIn, Text, ToolCall

from webui.webuisupport import LiveUI, running_webui

pytestmark = pytest.mark.asyncio(loop_scope="session")

HIVE_AG3NT = Path(sys.executable).with_name("hive-ag3nt")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ui(tmp_path_factory: pytest.TempPathFactory, standin: StandIn) -> AsyncIterator[LiveUI]:
    """For tests that only speak HTTP: no claude, and no turn may start."""
    async with running_webui(tmp_path_factory.mktemp("wa"), None, standin) as live:
        yield live


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def claude_ui(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: Path, standin: StandIn
) -> AsyncIterator[LiveUI]:
    """For tests that take turns: the real claude against the stand-in."""
    async with running_webui(tmp_path_factory.mktemp("wc"), claude_bin, standin) as live:
        yield live


async def events_of(ui: LiveUI, kind: str) -> list[dict[str, Any]]:
    store = ui.run.harness.store
    assert store is not None
    await store.flush()
    return [e.payload for e in store.list_recent(2000) if e.kind == kind]


async def test_an_over_long_send_is_refused_and_nothing_is_queued(ui: LiveUI) -> None:
    before = await events_of(ui, "operator_message")
    status, body = await ui.request("POST", "/api/send", {"body": "x" * (MAX_MESSAGE + 1)})
    assert status == 413
    assert f"the limit is {MAX_MESSAGE}" in body["error"]
    assert await events_of(ui, "operator_message") == before
    status, state = await ui.request("GET", "/api/state")
    assert status == 200
    assert state["queued"] == 0


async def test_a_body_over_the_request_cap_gets_a_json_error(ui: LiveUI) -> None:
    big = io.BytesIO(json.dumps({"body": "y" * (3 * 1024 * 1024)}).encode())
    status, body = await ui.request(
        "POST", "/api/send", data=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert "too large" in body["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_a_cross_origin_post_is_refused(ui: LiveUI, headers: dict[str, str]) -> None:
    model_file = ui.run.harness.settings.model_path
    status, body = await ui.request("POST", "/api/model", {"model": "opus"}, headers=headers)
    assert status == 403
    assert "cross-origin request refused" in body["error"]
    assert not model_file.exists()


async def test_a_foreign_host_header_is_refused(ui: LiveUI) -> None:
    port = ui.url.rsplit(":", 1)[1]
    status, body = await ui.request("GET", "/api/state", headers={"Host": f"evil.example:{port}"})
    assert status == 403
    assert "DNS rebinding" in body["error"]


async def test_a_same_origin_post_is_accepted(ui: LiveUI) -> None:
    headers = {"Origin": ui.url, "Sec-Fetch-Site": "same-origin"}
    status, body = await ui.request("POST", "/api/new-session", headers=headers)
    assert (status, body) == (200, {"ok": True})


async def test_an_unknown_model_is_refused_and_the_model_is_unchanged(ui: LiveUI) -> None:
    model_file = ui.run.harness.settings.model_path
    status, body = await ui.request("POST", "/api/model", {"model": "gpt-4o"})
    assert status == 400
    assert "unknown model 'gpt-4o'" in body["error"]
    assert "sonnet" in body["error"]
    assert not model_file.exists()
    _, state = await ui.request("GET", "/api/state")
    assert state["model"] == "haiku"


@pytest.mark.parametrize("path", ["/api/send", "/api/cancel", "/api/model", "/api/login/start"])
async def test_state_changing_routes_accept_only_post(ui: LiveUI, path: str) -> None:
    status, body = await ui.request("GET", path)
    assert status == 405
    assert body["error"]


async def test_malformed_bodies_get_clear_errors(ui: LiveUI) -> None:
    status, body = await ui.request(
        "POST", "/api/send", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert "not valid JSON" in body["error"]
    status, body = await ui.request("POST", "/api/send", data="body=hi")
    assert status == 400
    assert "as JSON" in body["error"]
    status, body = await ui.request("POST", "/api/send", {"body": 42})
    assert status == 400
    assert "'body'" in body["error"]
    status, body = await ui.request("POST", "/api/send", {"body": "   "})
    assert status == 400
    assert "empty" in body["error"]


async def test_cancel_without_a_running_turn_says_so(ui: LiveUI) -> None:
    status, body = await ui.request("POST", "/api/cancel")
    assert status == 409
    assert "no turn is running" in body["error"]


async def test_code_without_a_running_login_says_so(ui: LiveUI) -> None:
    status, body = await ui.request("POST", "/api/login/code", {"code": "abc"})
    assert status == 409
    assert "start the login first" in body["error"]


async def turn_of(ui: LiveUI, message_id: int) -> None:
    await ui.run.wait_event("turn_end", lambda e: e.payload["message_id"] == message_id)


async def test_an_operator_message_waits_for_the_running_turn(
    claude_ui: LiveUI, standin: StandIn
) -> None:
    hang = Hang(max_seconds=120)
    standin.script(claude_ui.key, hang, Text("web message handled"))
    mid = await claude_ui.send("a long broker turn")
    assert await asyncio.to_thread(hang.started.wait, 60)
    status, body = await claude_ui.request("POST", "/api/send", {"body": "while you are busy"})
    assert (status, body["queued"]) == (202, 1)
    status, _ = await claude_ui.request("POST", "/api/cancel")
    assert status == 200
    ended = await claude_ui.run.wait_event("turn_end", lambda e: e.payload["message_id"] == mid)
    started = await claude_ui.run.wait_event(
        "turn_start", lambda e: e.payload["message_id"] is None
    )
    # One claude at a time: the web UI's turn started only after the broker turn ended.
    assert started.id > ended.id
    done = await claude_ui.run.wait_event("turn_end", lambda e: e.payload["message_id"] is None)
    assert done.payload["ok"] is True


async def test_compact_runs_on_the_session_between_turns(
    claude_ui: LiveUI, standin: StandIn
) -> None:
    # A session needs two exchanges before claude agrees to compact it.
    for text in ("first exchange", "second exchange"):
        standin.script(claude_ui.key, Text(f"ok: {text}"))
        await turn_of(claude_ui, await claude_ui.send(text))
    status, body = await claude_ui.request("POST", "/api/compact")
    assert (status, body["ok"]) == (202, True)
    done = await claude_ui.run.wait_event("compacted", within=60)
    assert done.payload["ok"] is True, done.payload
    assert standin.received(claude_ui.key, Kind.COMPACT)


async def test_new_session_makes_the_next_turn_skip_continue(
    claude_ui: LiveUI, standin: StandIn
) -> None:
    status, _ = await claude_ui.request("POST", "/api/new-session")
    assert status == 200
    standin.script(claude_ui.key, Text("fresh"), Text("continued"))
    first = await claude_ui.send("start over")
    start = await claude_ui.run.wait_event("turn_start", lambda e: e.payload["message_id"] == first)
    assert start.payload["resume"] is False
    second = await claude_ui.send("and go on")
    start = await claude_ui.run.wait_event(
        "turn_start", lambda e: e.payload["message_id"] == second
    )
    assert start.payload["resume"] is True


async def test_history_then_stream_resumes_without_gaps_or_repeats(
    claude_ui: LiveUI, standin: StandIn
) -> None:
    standin.script(claude_ui.key, Text("first"))
    mid = await claude_ui.send("for the history")
    await claude_ui.run.wait_event("turn_end", lambda e: e.payload["message_id"] == mid)
    status, hist = await claude_ui.request("GET", "/events/history")
    assert status == 200
    ids = [e["id"] for e in hist["events"]]
    assert ids == sorted(ids)
    assert ids[-1] == hist["last_id"]
    assert len(ids) <= 2000
    # Events published after the history was read arrive on the stream, once each.
    standin.script(claude_ui.key, ToolCall("Bash", {"command": "echo streamed"}), Text("second"))
    mid2 = await claude_ui.send("for the stream")
    await claude_ui.run.wait_event("turn_end", lambda e: e.payload["message_id"] == mid2)
    got: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession(headers=claude_ui.auth) as session,
        session.get(
            f"{claude_ui.url}/events/stream?after={hist['epoch']}-{hist['last_id']}"
        ) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        deadline = time.monotonic() + 30
        event = ""
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(resp.content.readline(), 30)
            text = raw.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: ") and event == "ev":
                got.append(json.loads(text[6:]))
                if got[-1]["kind"] == "turn_end" and got[-1]["payload"]["message_id"] == mid2:
                    break
    got_ids = [e["id"] for e in got]
    assert got_ids == sorted(set(got_ids))
    assert got_ids[0] == hist["last_id"] + 1
    assert any(e["kind"] == "turn_start" and e["payload"]["message_id"] == mid2 for e in got)


async def test_long_strings_are_cut_for_the_browser_but_stored_whole(ui: LiveUI) -> None:
    ui.run.harness.bus.publish("note", {"source": "test", "text": "z" * 50_000})
    _, hist = await ui.request("GET", "/events/history")
    shown = hist["events"][-1]["payload"]["text"]
    assert shown.startswith("z" * 1000)
    assert "more characters not shown" in shown
    assert len(shown) < 20_000
    stored = await events_of(ui, "note")
    assert stored[-1]["text"] == "z" * 50_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_starts_the_web_ui_and_it_shows_its_own_log(tmp_path: Path) -> None:
    """`hive-ag3nt serve` as a process, stderr to a file (the local backend's way)."""
    if not HIVE_AG3NT.is_file():
        pytest.fail(f"{HIVE_AG3NT} is missing: install the project (pip install -e .)")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "home" / ".claude"),
        "ANTHROPIC_API_KEY": "sk-test-unused",
        "HYPERHIVE_AGENT_NAME": "dora",
        "HYPERHIVE_SOCKET": str(tmp_path / "nobody-listens.sock"),
        "HYPERHIVE_HIVE_DIR": str(tmp_path / "hive"),
        "HYPERHIVE_STATE_DIR": str(tmp_path / "state"),
        "HYPERHIVE_WEB_PORT": str(port),
    }
    (tmp_path / "hive").mkdir()
    (tmp_path / "hive" / "web-key").write_text("k" * 43)  # what the daemon would write
    auth = {"Authorization": "Bearer " + "k" * 43}
    log = tmp_path / "harness.log"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            str(HIVE_AG3NT), "serve", env=env, stdout=out, stderr=out, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while f"web UI on {url}" not in log.read_text():
            assert proc.returncode is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession(headers=auth) as session:
            async with session.get(f"{url}/api/state") as resp:
                state = await resp.json()
            assert state["agent"] == "dora"
            assert state["inbox"]["error"]  # no daemon: said, not crashed
            async with session.get(f"{url}/api/journal?lines=50") as resp:
                journal = await resp.json()
            async with session.get(url + "/") as resp:
                html = await resp.text()
        assert journal["source"] == str(log)
        assert any(f"web UI on {url}" in line for line in journal["lines"])
        assert "◆ dora" in html
        # A page with its stream open must not hold up a clean stop.
        async with (
            aiohttp.ClientSession(headers=auth) as session,
            session.get(f"{url}/events/stream") as sse,
        ):
            assert (await asyncio.wait_for(sse.content.readline(), 10)) == b"event: inbox\n"
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def test_the_icon_is_served_without_a_key(ui: LiveUI) -> None:
    # Browsers ask for /favicon.ico on every load, without the page's key: a 404 (or 401)
    # on every load otherwise.
    async with aiohttp.ClientSession() as session, session.get(ui.url + "/favicon.ico") as resp:
        assert resp.status == 200
        assert resp.content_type.startswith("image/")
        assert (await resp.read()).startswith(b"\x00\x00\x01\x00")  # an ICO file
