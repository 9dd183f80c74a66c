"""Dashboard routes over real HTTP against a real in-process hive (no browser)."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import aiohttp
import pytest
from dashsupport import Dash, git, until
from hivetest import drain
from hyperhive.agents.names import agent_port
from hyperhive.dashboard.app import FANOUT
from hyperhive.dashboard.stream import RESYNC, STREAM_QUEUE


async def get_json(dash: Dash, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=dash.auth) as s, s.get(dash.url + path) as r:
        return r.status, await r.json()


async def post(
    dash: Dash,
    path: str,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.post(dash.url + path, data=data, headers=headers) as r,
    ):
        return r.status, await r.json()


async def read_frames(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    """Parse SSE `change` frames until `count` arrived."""
    frames: list[dict[str, Any]] = []
    event = ""
    async with asyncio.timeout(10):
        while len(frames) < count:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "change":
                frames.append(json.loads(line[6:]))
    return frames


async def test_page_renders_every_section_with_its_label(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    # The page is a shell (served without a key); its lists come from /api/state?html=1.
    async with aiohttp.ClientSession() as s, s.get(dash.url + "/") as r:
        assert r.status == 200
        html = await r.text()
    assert "alice" not in html
    _, snap = await get_json(dash, "/api/state?html=1")
    html += "".join(snap["html"].values())
    for label in (
        "C0NTAINERS",
        "K3PT ST4T3",
        "M1ND H4S QU3STI0NS",
        "0PER4T0R 1NB0X",
        "P3NDING APPR0VALS",
        "message flow",
        "↻ R3BU1LD",
        "DESTR0Y",
        "T4LK",
        "R3QU3ST SP4WN",
    ):
        assert label in html, label
    assert 'data-key="agent-alice"' in html
    assert f'data-port="{agent_port("alice")}"' in html


async def test_state_snapshot_carries_the_hub_seq_and_every_list(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    await dash.agent("alice", "ask_operator", question="which db?", options=["pg", "sqlite"])
    status, snap = await get_json(dash, "/api/state?html=1")
    assert status == 200
    assert snap["seq"] == dash.hive.hub.seq
    assert [a["name"] for a in snap["agents"]] == ["alice", "manager"]
    assert snap["questions"][0]["question"] == "which db?"
    assert 'data-key="q-1"' in snap["html"]["questions"]
    assert 'type="radio"' in snap["html"]["questions"]


async def test_stream_frames_after_the_snapshot_have_higher_seq(dash: Dash) -> None:
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.get(dash.url + "/dashboard/stream") as stream,
    ):
        assert stream.headers["Content-Type"] == "text/event-stream"
        await stream.content.readline()  # "retry:" — the stream is subscribed from here on
        _, snap = await get_json(dash, "/api/state")
        await dash.hive.lifecycle.spawn("bob")
        frames = await read_frames(stream, 3)
    assert all(f["seq"] > snap["seq"] for f in frames)
    ops = [op for f in frames for op in f["ops"]]
    assert any(op["list"] == "containers" and op["key"] == "agent-bob" for op in ops)


async def test_shutdown_ends_open_streams_promptly(dash: Dash) -> None:
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.get(dash.url + "/dashboard/stream") as stream,
    ):
        await stream.content.readline()
        stopping = asyncio.create_task(dash.bound.stop())
        async with asyncio.timeout(3):
            rest = await stream.content.read()
            await stopping
    assert b"event: change" not in rest


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}],
)
async def test_cross_origin_posts_are_refused(dash: Dash, headers: dict[str, str]) -> None:
    await dash.hive.lifecycle.spawn("alice")
    status, body = await post(dash, "/destroy/alice", headers=headers)
    assert status == 403
    assert "cross-origin" in body["error"]
    assert dash.hive.registry.get("alice").live


async def test_same_origin_posts_are_accepted(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    host = dash.url.removeprefix("http://")
    headers = {"Origin": dash.url, "Host": host, "Sec-Fetch-Site": "same-origin"}
    status, body = await post(dash, "/kill/alice", headers=headers)
    assert (status, body["message"]) == (200, "alice stopped")
    assert dash.hive.registry.get("alice").state == "stopped"


@pytest.mark.parametrize(
    "path",
    [
        "/destroy/.hidden",
        "/destroy/a..b",
        "/destroy/manager",
        "/purge-tombstone/ALICE",
        "/revive/a%2Fb",
        "/kill/x_y",
    ],
)
async def test_invalid_names_are_refused_before_anything_happens(dash: Dash, path: str) -> None:
    status, body = await post(dash, path)
    assert status == 400, body
    assert "agent name" in body["error"]


@pytest.mark.parametrize("path", ["/approve/0", "/approve/-1", "/deny/1e3", "/cancel-question/x"])
async def test_invalid_ids_are_refused(dash: Dash, path: str) -> None:
    status, body = await post(dash, path)
    assert status == 400
    assert "invalid" in body["error"]


async def test_state_changing_routes_refuse_get(dash: Dash) -> None:
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.get(dash.url + "/destroy/alice") as r,
    ):
        assert r.status == 405


async def test_answer_joins_choices_and_text_and_reaches_the_asker(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    await drain(dash.socket("alice"))
    asked = await dash.agent(
        "alice", "ask_operator", question="which?", options=["a", "b", "c"], multi=True
    )
    form = aiohttp.FormData([("choice", "a"), ("choice", "c"), ("text", "and hurry")])
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.post(f"{dash.url}/answer-question/{asked['id']}", data=form) as r,
    ):
        assert r.status == 200
    got = await drain(dash.socket("alice"))
    event = json.loads(got[-1]["body"])
    assert event["event"] == "operator_answered"
    assert event["answer"] == "a, c, and hurry"
    status, body = await post(dash, f"/cancel-question/{asked['id']}")
    assert status == 409


async def test_empty_answer_is_refused_with_a_hint(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    asked = await dash.agent("alice", "ask_operator", question="ok?")
    status, body = await post(dash, f"/answer-question/{asked['id']}", {"text": "  "})
    assert status == 400
    assert "type an answer" in body["error"]


async def test_journal_shows_the_log_of_live_agents_only(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    log = dash.hive.lifecycle.paths("alice").harness_log  # type: ignore[arg-type]
    with log.open("a") as f:  # append: with the local backend a real harness writes here too
        f.write("".join(f"marker {i}\n" for i in range(50)))
    status, body = await get_json(dash, "/api/journal/alice?lines=3")
    assert status == 200
    assert len(body["lines"]) == 3
    status, body = await get_json(dash, "/api/journal/alice?lines=2000")
    markers = [line for line in body["lines"] if line.startswith("marker ")]
    assert markers == [f"marker {i}" for i in range(50)]
    await dash.hive.lifecycle.destroy("alice")
    status, body = await get_json(dash, "/api/journal/alice")
    assert status == 404
    status, body = await get_json(dash, "/api/journal/a..b")
    assert status == 400


async def test_history_returns_messages_after_an_id(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    ids = [(await dash.hive.broker.send("operator", "alice", f"m{i}"))[0] for i in range(5)]
    status, body = await get_json(dash, f"/dashboard/history?after={ids[2]}")
    assert status == 200
    assert [m["body"] for m in body["messages"]] == ["m3", "m4"]
    assert f'data-key="m-{ids[4]}"' in body["html"]


async def test_spawn_request_then_revive_and_purge(dash: Dash) -> None:
    status, body = await post(dash, "/request-spawn", {"name": "carol", "description": "tests"})
    assert status == 200
    status, body = await post(dash, f"/approve/{body['id']}")
    assert status == 200
    await until(lambda: _live(dash, "carol"))
    assert (await post(dash, "/destroy/carol"))[0] == 200
    assert dash.hive.registry.get("carol").state == "destroyed"
    assert (await post(dash, "/revive/carol"))[0] == 200
    assert dash.hive.registry.get("carol").live
    assert (await post(dash, "/purge-tombstone/carol"))[0] == 409  # live: refused
    await post(dash, "/destroy/carol")
    assert (await post(dash, "/purge-tombstone/carol"))[0] == 200
    assert dash.hive.registry.find("carol") is None
    assert not dash.hive.lifecycle.paths("carol").root.exists()  # type: ignore[arg-type]


async def _live(dash: Dash, name: str) -> bool:
    record = dash.hive.registry.find(name)
    return record is not None and record.live and record.state == "running"


async def test_port_conflict_of_a_spawn_request_shows_a_banner(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    clash = next(f"x{i}" for i in range(100_000) if agent_port(f"x{i}") == agent_port("alice"))
    await dash.hive.approvals.request_spawn(clash, "")
    _, snap = await get_json(dash, "/api/state?html=1")
    assert snap["port_conflicts"][0]["port"] == agent_port("alice")
    assert "rename one" in snap["html"]["banner"]
    assert clash in snap["html"]["banner"]


async def test_send_as_operator_reaches_the_agent(dash: Dash) -> None:
    await dash.hive.lifecycle.spawn("alice")
    await drain(dash.socket("alice"))
    status, _ = await post(dash, "/send", {"to": "alice", "body": "hello from the dashboard"})
    assert status == 200
    got = await drain(dash.socket("alice"))
    assert [(m["from"], m["body"]) for m in got] == [("operator", "hello from the dashboard")]
    status, body = await post(dash, "/send", {"to": "nobody", "body": "x"})
    assert status == 404
    assert "unknown recipient" in body["error"]
    # the operator writing to itself hears what the CLI says, not the spawn name rule
    status, body = await post(dash, "/send", {"to": "operator", "body": "x"})
    assert status == 403
    assert body["error"] == "operator cannot send a message to itself"


async def test_talk_to_an_agent_without_a_login_says_it_will_not_answer(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    await dash.hive.lifecycle.spawn("alice")
    status, body = await post(dash, "/send", {"to": "alice", "body": "anyone there?"})
    assert status == 200
    assert "alice needs a Claude login" in body["message"]
    claude = dash.hive.lifecycle.paths("alice").claude  # type: ignore[arg-type]
    (claude / ".credentials.json").write_text("{}")
    status, body = await post(dash, "/send", {"to": "alice", "body": "now?"})
    assert body["message"] == "sent to alice"


async def test_deny_with_a_note_tells_the_manager(dash: Dash) -> None:
    approval_id = await dash.hive.approvals.request_spawn("dave", "")
    await drain(dash.socket("manager"))
    status, _ = await post(dash, f"/deny/{approval_id}", {"note": "not now"})
    assert status == 200
    assert dash.hive.approvals.get(approval_id).note == "not now"
    got = await drain(dash.socket("manager"))
    event = json.loads(got[-1]["body"])
    assert (event["event"], event["status"], event["note"]) == (
        "approval_resolved",
        "denied",
        "not now",
    )


async def test_spawn_approval_has_no_diff(dash: Dash) -> None:
    approval_id = await dash.hive.approvals.request_spawn("dave", "")
    status, body = await get_json(dash, f"/api/diff/{approval_id}")
    assert (status, body["diff"]) == (200, "")
    status, _ = await get_json(dash, "/api/diff/999")
    assert status == 404


def fake_row(i: int) -> dict[str, Any]:
    """A message change as the broker publishes it (RecentRow by alias)."""
    return {"id": i, "from": "manager", "to": "operator", "body": f"b{i}", "sent_at": 0}


async def test_a_stream_that_falls_behind_is_told_to_resync_not_buffered(dash: Dash) -> None:
    fanout = dash.bound.runner.app[FANOUT]
    lagging = fanout.add()
    for i in range(STREAM_QUEUE + 10):
        lagging.put(f"frame {i}".encode())
    # the backlog was replaced by one resync; frames after it are still delivered
    assert lagging.queue.qsize() == 10
    chunk = await lagging.next_chunk()
    assert chunk is not None
    assert chunk.startswith(RESYNC + f"frame {STREAM_QUEUE + 1}".encode())
    assert lagging.resyncs == 1


async def test_the_fanout_resubscribes_when_the_hub_drops_it(dash: Dash) -> None:
    hub = dash.hive.hub
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.get(dash.url + "/dashboard/stream") as stream,
    ):
        await stream.content.readline()
        for i in range(1, 10_100):  # more than the hub queue holds, with no await between
            hub.publish("message", fake_row(i))
        seen_resync = False
        async with asyncio.timeout(30):
            while not seen_resync:
                seen_resync = (await stream.content.readline()).startswith(b"event: resync")
        marker = hub.publish("message", fake_row(99_999))
        frames: list[dict[str, Any]] = []
        while not any(f["seq"] == marker.seq for f in frames):
            frames += await read_frames(stream, 1)
    _, snap = await get_json(dash, "/api/state")
    assert snap["seq"] == marker.seq
    assert snap["messages"][-1]["body"] == "b99999"


@pytest.mark.parametrize(
    ("host", "status"),
    [("evil.example", 403), ("localhost", 200), ("127.0.0.1", 200), ("[::1]", 200)],
)
async def test_a_loopback_dashboard_refuses_other_host_names(
    dash: Dash, host: str, status: int
) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the hive."""
    port = dash.bound.port
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.get(dash.url + "/api/state", headers={"Host": f"{host}:{port}"}) as r,
    ):
        assert r.status == status
        if status == 403:
            assert "DNS rebinding" in (await r.json())["error"]


async def test_pages_cannot_be_framed(dash: Dash) -> None:
    async with aiohttp.ClientSession(headers=dash.auth) as s, s.get(dash.url + "/") as r:
        policy = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'self'" in policy


async def test_an_orphaned_approval_is_failed_on_the_next_render(dash: Dash) -> None:
    hive = dash.hive
    await hive.lifecycle.spawn("olga")
    paths = hive.lifecycle.paths("olga")  # type: ignore[arg-type]
    (paths.config / "agent.nix").write_text((paths.config / "agent.nix").read_text() + "# x\n")
    git(paths.config, "commit", "-qam", "x")
    sha = git(paths.config, "rev-parse", "HEAD")
    reply = await dash.agent("manager", "request_apply_commit", agent="olga", commit_ref=sha)
    assert reply["kind"] == "ok", reply
    status, snap = await get_json(dash, "/api/state")
    assert [a["id"] for a in snap["approvals"]] == [reply["id"]]
    shutil.rmtree(paths.root)
    status, snap = await get_json(dash, "/api/state")
    assert status == 200
    assert snap["approvals"] == []
    info = hive.approvals.get(reply["id"])
    assert (info.status, info.note) == ("failed", "agent state dir missing")


async def test_the_needs_login_badge_follows_the_agents_credentials(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    await dash.hive.lifecycle.spawn("lena")

    async def badge() -> bool:
        _, snap = await get_json(dash, "/api/state")
        (lena,) = [a for a in snap["agents"] if a["name"] == "lena"]
        return bool(lena["needs_login"])

    assert await badge() is True
    claude_dir = dash.hive.lifecycle.paths("lena").claude  # type: ignore[arg-type]
    (claude_dir / ".credentials.json").write_text("{}")
    assert await badge() is False


async def test_the_icon_is_served_without_a_key(dash: Dash) -> None:
    # Browsers ask for /favicon.ico on every load, without the key.
    async with aiohttp.ClientSession() as s, s.get(dash.url + "/favicon.ico") as r:
        assert r.status == 200
        assert r.content_type.startswith("image/")
        assert (await r.read()).startswith(b"\x00\x00\x01\x00")  # an ICO file


async def test_page_keys_are_handed_out_for_running_agents_only(dash: Dash) -> None:
    """A stopped agent's port is free: another agent could listen there and read the key
    from the link, so the link carries none until the agent runs again."""
    await dash.hive.lifecycle.spawn("alice")
    _, body = await get_json(dash, "/api/webui-keys")
    assert body["keys"]["alice"] == dash.hive.credentials.page_key("alice")
    await dash.hive.lifecycle.kill("alice")  # type: ignore[arg-type]
    _, body = await get_json(dash, "/api/webui-keys")
    assert "alice" not in body["keys"]
